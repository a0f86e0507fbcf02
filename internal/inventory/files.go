package inventory

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Files is a model's files wherever they lie: a folder on disk (Dir) or a
// repository read through HTTP ranges (package hub). The inventory reads
// both the same way, and reads of a header ask for the header's bytes
// only, so a remote model costs no weight bytes.
type Files interface {
	// Where names the files in messages and in Model.Path.
	Where() string
	// List lists the model's files (paths relative to its folder, with
	// "/" between folders) with their sizes.
	List() ([]FileInfo, error)
	// Open opens one of them for reading at offsets.
	Open(name string) (FileReader, error)
}

// FileInfo is one file of a model.
type FileInfo struct {
	Name string
	Size int64
}

// FileReader reads a file at offsets.
type FileReader interface {
	io.ReaderAt
	io.Closer
}

// Dir is a model folder on disk (its top level: engines read no deeper).
type Dir string

// Where is the folder's path.
func (d Dir) Where() string { return string(d) }

// List lists the folder's regular files (symlinks followed, as into a
// Hugging Face cache's blobs).
func (d Dir) List() ([]FileInfo, error) {
	ents, err := os.ReadDir(string(d))
	if err != nil {
		return nil, err
	}
	var out []FileInfo
	for _, e := range ents {
		info, err := os.Stat(filepath.Join(string(d), e.Name()))
		if err == nil && info.Mode().IsRegular() {
			out = append(out, FileInfo{Name: e.Name(), Size: info.Size()})
		}
	}
	return out, nil
}

// Open opens a file of the folder.
func (d Dir) Open(name string) (FileReader, error) {
	return os.Open(filepath.Join(string(d), filepath.FromSlash(name)))
}

// index lists a model's files by name.
type index map[string]int64

func listIndex(fs Files) (index, []string, error) {
	list, err := fs.List()
	if err != nil {
		return nil, nil, err
	}
	ix := index{}
	names := make([]string, 0, len(list))
	for _, f := range list {
		ix[f.Name] = f.Size
		names = append(names, f.Name)
	}
	sort.Strings(names)
	return ix, names, nil
}

// readJSON decodes a small JSON file of fs into v.
func readJSON(fs Files, ix index, name string, v any) error {
	size, ok := ix[name]
	if !ok {
		return os.ErrNotExist
	}
	if size > maxConfig {
		return fmt.Errorf("%d bytes is too large for a config file", size)
	}
	r, err := fs.Open(name)
	if err != nil {
		return err
	}
	defer r.Close()
	return json.NewDecoder(io.NewSectionReader(r, 0, size)).Decode(v)
}

// hasChatTemplate says whether a folder model carries a chat template:
// chat_template.jinja or .json beside it, or one in tokenizer_config.json
// (transformers' places for it).
func hasChatTemplate(fs Files, ix index) bool {
	if _, ok := ix["chat_template.jinja"]; ok {
		return true
	}
	if _, ok := ix["chat_template.json"]; ok {
		return true
	}
	var tc struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
	}
	if readJSON(fs, ix, "tokenizer_config.json", &tc) != nil {
		return false
	}
	t := strings.TrimSpace(string(tc.ChatTemplate))
	return t != "" && t != "null" && t != `""` && t != "[]"
}
