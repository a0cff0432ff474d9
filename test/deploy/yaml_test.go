package deploy

import (
	"fmt"
	"strings"
)

// A purpose-built reader for the YAML subset the files under deploy/ use
// (the library module keeps its three dependencies, so no YAML package):
// block mappings and sequences by indentation, "- key: value" items,
// plain and quoted scalars, literal block scalars (|), flow sequences of
// scalars and the empty flow mapping, comments and "---" separators. Every
// scalar is read as a string. Anything else is an error naming the line,
// so a manifest that outgrows the reader fails the test instead of being
// misread.

type yamlLine struct {
	no     int
	indent int
	text   string // without indentation and comment
	raw    string // the whole line, for block scalars
}

// parseYAML returns the documents of src (nil documents dropped).
func parseYAML(src string) ([]any, error) {
	var docs []any
	var cur []yamlLine
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		p := &yamlParser{lines: cur}
		v, err := p.node(cur[0].indent)
		if err != nil {
			return err
		}
		if p.i != len(p.lines) {
			return fmt.Errorf("line %d: unexpected %q", p.lines[p.i].no, p.lines[p.i].text)
		}
		if v != nil {
			docs = append(docs, v)
		}
		cur = nil
		return nil
	}
	for i, raw := range strings.Split(src, "\n") {
		if strings.TrimRight(raw, " ") == "---" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if strings.Contains(raw, "\t") {
			return nil, fmt.Errorf("line %d: tab", i+1)
		}
		text := strings.TrimSpace(stripComment(raw))
		indent := len(raw) - len(strings.TrimLeft(raw, " "))
		cur = append(cur, yamlLine{no: i + 1, indent: indent, text: text, raw: raw})
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return docs, nil
}

// stripComment removes a # comment that is not inside quotes.
func stripComment(s string) string {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || s[i-1] == ' '):
			return s[:i]
		}
	}
	return s
}

type yamlParser struct {
	lines []yamlLine
	i     int
}

// skipBlank moves past empty (or comment-only) lines.
func (p *yamlParser) skipBlank() {
	for p.i < len(p.lines) && p.lines[p.i].text == "" {
		p.i++
	}
}

func isItem(text string) bool { return text == "-" || strings.HasPrefix(text, "- ") }

// node reads the mapping or sequence starting at the next line, indented
// by indent.
func (p *yamlParser) node(indent int) (any, error) {
	p.skipBlank()
	if p.i >= len(p.lines) {
		return nil, nil
	}
	l := p.lines[p.i]
	if l.indent != indent {
		return nil, fmt.Errorf("line %d: indentation %d, want %d", l.no, l.indent, indent)
	}
	if isItem(l.text) {
		return p.seq(indent)
	}
	return p.mapping(indent)
}

func (p *yamlParser) mapping(indent int) (map[string]any, error) {
	m := map[string]any{}
	for p.skipBlank(); p.i < len(p.lines); p.skipBlank() {
		l := p.lines[p.i]
		if l.indent < indent || (l.indent == indent && isItem(l.text)) {
			break
		}
		if l.indent > indent {
			return nil, fmt.Errorf("line %d: unexpected indentation", l.no)
		}
		key, rest, ok := splitKey(l.text)
		if !ok {
			return nil, fmt.Errorf("line %d: want key: value, got %q", l.no, l.text)
		}
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("line %d: duplicate key %q", l.no, key)
		}
		p.i++
		v, err := p.value(indent, rest, l.no)
		if err != nil {
			return nil, err
		}
		m[key] = v
	}
	return m, nil
}

// value reads what follows "key:" (rest) on a line at indent.
func (p *yamlParser) value(indent int, rest string, no int) (any, error) {
	switch {
	case rest == "|" || rest == "|-":
		return p.block(indent), nil
	case rest != "":
		return scalar(rest, no)
	}
	p.skipBlank()
	if p.i >= len(p.lines) {
		return nil, nil
	}
	next := p.lines[p.i]
	switch {
	case next.indent > indent:
		return p.node(next.indent)
	case next.indent == indent && isItem(next.text):
		return p.seq(indent) // "key:" followed by "- item" at the key's indentation
	}
	return nil, nil
}

func (p *yamlParser) seq(indent int) ([]any, error) {
	var s []any
	for p.skipBlank(); p.i < len(p.lines); p.skipBlank() {
		l := p.lines[p.i]
		if l.indent != indent || !isItem(l.text) {
			if l.indent > indent {
				return nil, fmt.Errorf("line %d: unexpected indentation", l.no)
			}
			break
		}
		content := strings.TrimSpace(strings.TrimPrefix(l.text, "-"))
		if content == "" {
			p.i++
			v, err := p.value(indent, "", l.no)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
			continue
		}
		if _, _, ok := splitKey(content); ok && !strings.HasPrefix(content, "[") && !strings.HasPrefix(content, "{") {
			// "- key: value": a mapping whose keys sit two columns in.
			p.lines[p.i] = yamlLine{no: l.no, indent: indent + 2, text: content, raw: l.raw}
			v, err := p.mapping(indent + 2)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
			continue
		}
		p.i++
		v, err := scalar(content, l.no)
		if err != nil {
			return nil, err
		}
		s = append(s, v)
	}
	return s, nil
}

// block reads a literal block scalar: the following lines indented deeper
// than indent, with their common indentation removed.
func (p *yamlParser) block(indent int) string {
	var out []string
	strip := -1
	for ; p.i < len(p.lines); p.i++ {
		l := p.lines[p.i]
		if strings.TrimSpace(l.raw) == "" {
			out = append(out, "")
			continue
		}
		if l.indent <= indent {
			break
		}
		if strip < 0 {
			strip = l.indent
		}
		out = append(out, l.raw[min(strip, l.indent):])
	}
	return strings.TrimRight(strings.Join(out, "\n"), "\n") + "\n"
}

// splitKey splits "key: value" (or "key:") outside quotes.
func splitKey(text string) (key, rest string, ok bool) {
	var quote byte
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == ':' && (i+1 == len(text) || text[i+1] == ' '):
			k := strings.TrimSpace(text[:i])
			if uq, err := unquote(k); err == nil {
				k = uq
			}
			return k, strings.TrimSpace(text[i+1:]), k != ""
		}
	}
	return "", "", false
}

// scalar reads a plain, quoted or flow value.
func scalar(s string, no int) (any, error) {
	switch {
	case s == "{}":
		return map[string]any{}, nil
	case strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]"):
		var out []any
		for _, part := range strings.Split(s[1:len(s)-1], ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			v, err := unquote(part)
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", no, err)
			}
			out = append(out, v)
		}
		return out, nil
	case strings.HasPrefix(s, "{") || strings.HasPrefix(s, "&") || strings.HasPrefix(s, "*") || strings.HasPrefix(s, ">"):
		return nil, fmt.Errorf("line %d: %q is beyond this reader", no, s)
	}
	v, err := unquote(s)
	if err != nil {
		return nil, fmt.Errorf("line %d: %v", no, err)
	}
	return v, nil
}

func unquote(s string) (string, error) {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') {
		if s[len(s)-1] != s[0] {
			return "", fmt.Errorf("unterminated quote in %q", s)
		}
		return s[1 : len(s)-1], nil
	}
	if strings.ContainsAny(s[:min(1, len(s))], "\"'") {
		return "", fmt.Errorf("unterminated quote in %q", s)
	}
	return s, nil
}

// at walks a parsed document along path: map keys, and for sequences
// either an index ("0") or "name=x", the item whose name is x.
func at(v any, path ...string) any {
	for _, step := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[step]
		case []any:
			v = nil
			if name, ok := strings.CutPrefix(step, "name="); ok {
				for _, item := range x {
					if m, ok := item.(map[string]any); ok && m["name"] == name {
						v = m
					}
				}
			} else {
				var i int
				if _, err := fmt.Sscan(step, &i); err == nil && i >= 0 && i < len(x) {
					v = x[i]
				}
			}
		default:
			return nil
		}
	}
	return v
}
