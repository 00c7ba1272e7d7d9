package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// format is an output format of -o.
type format string

const (
	formatHuman format = "human"
	formatJSON  format = "json"
	formatYAML  format = "yaml"
	// formatCSV is for the commands that print lines to add up
	// (billing cost list).
	formatCSV format = "csv"
)

func parseFormat(s string) (format, error) {
	switch f := format(strings.ToLower(s)); f {
	case formatHuman, formatJSON, formatYAML, formatCSV:
		return f, nil
	}
	return "", fmt.Errorf("--output %q: want human, json, yaml, or csv (billing cost list)", s)
}

// field is one row of a describe table.
type field struct{ name, value string }

// view is how the CLI shows one kind of object T, as confluent's does:
// for humans the fields of a describe table and the columns of a list
// row, for json and yaml a flat object of confluent's field names
// (is_current, id, name, …) rather than the API's envelope.
type view[T any] struct {
	fields func(*session, T) []field
	header []string
	row    func(*session, T) []string
	flat   func(*session, T) any
}

// show prints one object as the server sent it.
func (v view[T]) show(s *session, raw json.RawMessage) error {
	var it T
	if err := json.Unmarshal(raw, &it); err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	return v.print(s, it)
}

// print prints one object.
func (v view[T]) print(s *session, it T) error {
	if s.format != formatHuman {
		return printValue(s.out, s.format, v.flat(s, it))
	}
	return printFields(s.out, v.fields(s, it))
}

// showList prints the items of a list as the server sent them: for json
// and yaml an array of the flat objects (the pages are merged, so no
// page's metadata would be true of the whole), for humans a table of
// header and one row per item.
func (v view[T]) showList(s *session, raw []json.RawMessage) error {
	items := make([]T, 0, len(raw))
	for _, r := range raw {
		var it T
		if err := json.Unmarshal(r, &it); err != nil {
			return fmt.Errorf("decoding the answer: %w", err)
		}
		items = append(items, it)
	}
	return v.printList(s, items)
}

// printList prints a list of objects.
func (v view[T]) printList(s *session, items []T) error {
	if s.format != formatHuman {
		flat := make([]any, 0, len(items))
		for _, it := range items {
			flat = append(flat, v.flat(s, it))
		}
		return printValue(s.out, s.format, flat)
	}
	return printTable(s.out, v.header, rows(s, v, items))
}

// rows are the table rows of items.
func rows[T any](s *session, v view[T], items []T) [][]string {
	out := make([][]string, len(items))
	for i, it := range items {
		out[i] = v.row(s, it)
	}
	return out
}

// printValue writes v as indented JSON, or as YAML.
func printValue(w io.Writer, f format, v any) error {
	if f == formatCSV {
		return fmt.Errorf("-o csv is for billing cost list; this command prints human, json or yaml")
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return printRaw(w, f, data)
}

// current marks the current environment, cluster or key in a list, as
// confluent's Current column does.
func current(is bool) string {
	if is {
		return "*"
	}
	return ""
}

// printRaw writes JSON data indented, or as YAML.
func printRaw(w io.Writer, f format, data []byte) error {
	if f == formatYAML {
		out, err := jsonToYAML(data)
		if err != nil {
			return err
		}
		_, err = w.Write(out)
		return err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, data, "", "  "); err != nil {
		return fmt.Errorf("the answer is not JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := buf.WriteTo(w)
	return err
}

// jsonToYAML converts JSON to block-style YAML keeping the order of the
// keys: JSON is YAML, so the YAML parser reads it into a node tree, and
// clearing the styles makes the encoder write blocks and quote only the
// strings that need it (like "true" or "").
func jsonToYAML(data []byte) ([]byte, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		return nil, fmt.Errorf("the answer is not JSON: %w", err)
	}
	var clear func(*yaml.Node)
	clear = func(n *yaml.Node) {
		n.Style = 0
		for _, c := range n.Content {
			clear(c)
		}
	}
	clear(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// printFields writes a two-column table of fields, as confluent's describe
// does:
//
//	+------+---------+
//	| ID   | lkc-1   |
//	| Name | orders  |
//	+------+---------+
func printFields(w io.Writer, fields []field) error {
	nw, vw := 0, 0
	for i, f := range fields {
		fields[i] = field{clean(f.name), clean(f.value)}
		nw = max(nw, utf8.RuneCountInString(fields[i].name))
		vw = max(vw, utf8.RuneCountInString(fields[i].value))
	}
	border := "+" + strings.Repeat("-", nw+2) + "+" + strings.Repeat("-", vw+2) + "+\n"
	var b strings.Builder
	b.WriteString(border)
	for _, f := range fields {
		fmt.Fprintf(&b, "| %s | %s |\n", pad(f.name, nw), pad(f.value, vw))
	}
	b.WriteString(border)
	_, err := io.WriteString(w, b.String())
	return err
}

func pad(s string, width int) string {
	return s + strings.Repeat(" ", width-utf8.RuneCountInString(s))
}

// printTable writes a column table with a header row.
func printTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	line := func(cells []string) {
		for i, c := range cells {
			if i > 0 {
				io.WriteString(tw, "\t")
			}
			io.WriteString(tw, clean(c))
		}
		io.WriteString(tw, "\n")
	}
	line(header)
	for _, r := range rows {
		line(r)
	}
	return tw.Flush()
}

// clean makes a server-sent string safe for a table cell on a terminal:
// control characters (escape sequences, tabs that would split a cell,
// newlines that would split a row) are written as Go escapes instead, and
// invalid UTF-8 as U+FFFD.
func clean(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || r == utf8.RuneError }) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// oneLine is clean for error text, cut to at most n runes.
func oneLine(s string, n int) string {
	s = clean(s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}
