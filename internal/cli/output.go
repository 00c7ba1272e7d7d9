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
)

func parseFormat(s string) (format, error) {
	switch f := format(strings.ToLower(s)); f {
	case formatHuman, formatJSON, formatYAML:
		return f, nil
	}
	return "", fmt.Errorf("--output %q: want human, json or yaml", s)
}

// field is one row of a describe table.
type field struct{ name, value string }

// show prints one API object: for json and yaml the object as the server
// sent it (so fields this CLI does not know still show), for humans the
// fields that fields picks from it.
func show[T any](s *session, raw json.RawMessage, fields func(T) []field) error {
	if s.format != formatHuman {
		return printRaw(s.out, s.format, raw)
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	return printFields(s.out, fields(v))
}

// showList prints the items of a list: for json and yaml an array of the
// objects as sent (the pages are merged, so no page's metadata would be
// true of the whole), for humans a table of header and one row per item.
func showList[T any](s *session, items []json.RawMessage, header []string, row func(T) []string) error {
	if s.format != formatHuman {
		arr, err := json.Marshal(items)
		if err != nil {
			return err
		}
		return printRaw(s.out, s.format, arr)
	}
	rows := make([][]string, 0, len(items))
	for _, raw := range items {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("decoding the answer: %w", err)
		}
		rows = append(rows, row(v))
	}
	return printTable(s.out, header, rows)
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
