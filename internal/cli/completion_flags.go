package cli

import (
	"flag"
	"strings"
)

// valueKind is what a flag's value completes to.
type valueKind int

const (
	valueNone  valueKind = iota // a boolean flag: no value
	valueText                   // free text: nothing to offer
	valueFile                   // a file name
	valueDir                    // a directory name
	valueWords                  // one of compFlag.words
)

// compFlag is one flag as the completion scripts see it.
type compFlag struct {
	name, usage string
	kind        valueKind
	words       []string
	repeatable  bool
}

// dash is the flag as documented: -o for one letter, --name otherwise.
func (f compFlag) dash() string {
	if len(f.name) == 1 {
		return "-" + f.name
	}
	return "--" + f.name
}

// compFlags describes every flag of fs, sorted by name. The value kind
// follows from the flag itself: booleans take none; "config" and names
// ending in "-file" take a file, "dir" and names ending in "-dir" a
// directory; a usage of the form "label: a, b or c" or "label: a, b, c"
// (each value one word, optionally followed by a parenthesis) offers a, b
// and c.
func compFlags(fs *flag.FlagSet) []compFlag {
	var out []compFlag
	fs.VisitAll(func(fl *flag.Flag) {
		f := compFlag{name: fl.Name, usage: fl.Usage, kind: valueText}
		_, f.repeatable = fl.Value.(*multiFlag)
		switch b, ok := fl.Value.(interface{ IsBoolFlag() bool }); {
		case ok && b.IsBoolFlag():
			f.kind = valueNone
		case fl.Name == "config" || strings.HasSuffix(fl.Name, "-file"):
			f.kind = valueFile
		case fl.Name == "dir" || strings.HasSuffix(fl.Name, "-dir"):
			f.kind = valueDir
		default:
			if f.words = usageChoices(fl.Usage); f.words != nil {
				f.kind = valueWords
			}
		}
		out = append(out, f)
	})
	return out
}

// usageChoices returns the values a usage text lists as "label: a, b or c"
// or "label: a, b, c"
// ("output: text (FILE:LINE:COL: message) or json (...)" gives text and
// json), or nil when the usage is not such a list of at least two words.
func usageChoices(usage string) []string {
	label, list, ok := strings.Cut(usage, ": ")
	if !ok || strings.ContainsAny(label, "()") {
		return nil
	}
	var b strings.Builder
	depth := 0
	for _, r := range list {
		switch {
		case r == '(':
			depth++
		case r == ')':
			if depth--; depth < 0 {
				return nil
			}
		case depth == 0:
			b.WriteRune(r)
		}
	}
	if depth != 0 {
		return nil
	}
	words := strings.Split(strings.Replace(strings.Join(strings.Fields(b.String()), " "), " or ", ", ", 1), ", ")
	if len(words) < 2 {
		return nil
	}
	for _, w := range words {
		if !isChoiceWord(w) {
			return nil
		}
	}
	return words
}

// isChoiceWord: a letter, then letters, digits and '-'.
func isChoiceWord(w string) bool {
	for i, r := range w {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !letter && (i == 0 || !(r >= '0' && r <= '9' || r == '-')) {
			return false
		}
	}
	return w != ""
}
