package store

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
