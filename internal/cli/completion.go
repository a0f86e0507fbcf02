package cli

import (
	"fmt"
	"sort"
	"strings"
)

// bashCompletion completes verbs, and model, slot and profile names from
// the config (through the hidden `gantry __names`).
const bashCompletion = `# gantry bash completion: source <(gantry completion bash)
_gantry() {
  local cur prev verb
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  verb="${COMP_WORDS[1]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "%s" -- "$cur") )
    return
  fi
  case "$prev" in
    --config|--out|--root|--binary) COMPREPLY=( $(compgen -f -- "$cur") ); return ;;
  esac
  case "$verb" in
    start|stop|logs|chat|inspect) COMPREPLY=( $(compgen -W "$(gantry __names models 2>/dev/null)" -- "$cur") ) ;;
    switch)
      if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=( $(compgen -W "$(gantry __names slots 2>/dev/null)" -- "$cur") )
      else COMPREPLY=( $(compgen -W "$(gantry __names models 2>/dev/null)" -- "$cur") ); fi ;;
    profile) COMPREPLY=( $(compgen -W "$(gantry __names profiles 2>/dev/null) --none" -- "$cur") ) ;;
    config) COMPREPLY=( $(compgen -W "validate" -- "$cur") ) ;;
    completion) COMPREPLY=( $(compgen -W "bash zsh" -- "$cur") ) ;;
  esac
}
complete -o default -F _gantry gantry
`

func runCompletion(e *env, args []string) error {
	if len(args) != 1 || (args[0] != "bash" && args[0] != "zsh") {
		return usagef("usage: gantry completion bash|zsh   (then: source <(gantry completion bash))")
	}
	var names []string
	for _, v := range verbs() {
		names = append(names, v.name)
	}
	script := fmt.Sprintf(bashCompletion, strings.Join(names, " "))
	if args[0] == "zsh" {
		script = "autoload -U +X bashcompinit && bashcompinit\n" + script
	}
	fmt.Fprint(e.stdout, script)
	return nil
}

// runNames prints model (with aliases), slot or profile names of the
// config, one per line, for the completion script.
func runNames(e *env, args []string) error {
	if len(args) != 1 {
		return usagef("usage: gantry __names models|slots|profiles")
	}
	c, _, err := loadConfig("", true)
	if err != nil {
		return err
	}
	var out []string
	switch args[0] {
	case "models":
		for _, n := range c.ModelNames() {
			out = append(out, n)
			out = append(out, c.Models[n].Aliases...)
		}
	case "slots":
		for n := range c.Slots {
			out = append(out, n)
		}
	case "profiles":
		for n := range c.Profiles {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	fmt.Fprintln(e.stdout, strings.Join(out, "\n"))
	return nil
}
