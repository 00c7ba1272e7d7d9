package store

import "unicode/utf8"

// ListQuery builds the filter of a resource list for a SQL backend: the
// text after "FROM resources" (WHERE, ORDER BY, LIMIT) and its arguments.
// placeholder(n) renders the n-th parameter (1-based) in the backend's
// dialect: "?" for SQLite, "$n" for PostgreSQL.
func ListQuery(p ListParams, placeholder func(n int) string) (string, []any) {
	var q string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return placeholder(len(args))
	}
	q = ` WHERE kind = ` + arg(p.Kind) + ` AND id > ` + arg(p.AfterID)
	if p.Organization != "" {
		q += ` AND organization = ` + arg(p.Organization)
	}
	if p.Environment != "" {
		q += ` AND environment = ` + arg(p.Environment)
	}
	if !p.IncludeDeleted {
		q += ` AND deleted_at IS NULL`
	}
	q += ` ORDER BY id`
	if p.Limit > 0 {
		q += ` LIMIT ` + arg(p.Limit)
	}
	return q, args
}

// IndexListQuery builds, like ListQuery, the filter of an index list: the
// text after "FROM index_entries" and its arguments. Keys compare bytewise
// (a backend declares its key column so); the prefix is a range of keys,
// so that the list reads only the entries it returns.
func IndexListQuery(p IndexListParams, placeholder func(n int) string) (string, []any) {
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return placeholder(len(args))
	}
	q := ` WHERE name = ` + arg(p.Index) + ` AND key >= ` + arg(p.Prefix)
	if p.AfterKey != "" {
		q += ` AND key > ` + arg(p.AfterKey)
	}
	if end, ok := prefixEnd(p.Prefix); ok {
		q += ` AND key < ` + arg(end)
	}
	q += ` ORDER BY key`
	if p.Limit > 0 {
		q += ` LIMIT ` + arg(p.Limit)
	}
	return q, args
}

// prefixEnd returns the least valid UTF-8 string greater than every string
// that starts with prefix (UTF-8 orders bytewise as by code point); false
// when there is none (an empty prefix).
func prefixEnd(prefix string) (string, bool) {
	rs := []rune(prefix)
	for i := len(rs) - 1; i >= 0; i-- {
		next := rs[i] + 1
		if next >= 0xD800 && next <= 0xDFFF { // surrogates are not characters
			next = 0xE000
		}
		if next <= utf8.MaxRune {
			return string(append(rs[:i], next)), true
		}
	}
	return "", false
}
