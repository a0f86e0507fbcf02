package systemd

import "testing"

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain":         "plain",
		"with space":    `"with space"`,
		`say "hi"`:      `"say \"hi\""`,
		"50%":           "50%%",
		"$HOME":         "$$HOME",
		"a;b":           `"a;b"`,
		`back\slash`:    `"back\\slash"`,
		"":              `""`,
		"--flag=x y %n": `"--flag=x y %%n"`,
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}
