package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// deleteHelp is the part of every delete command's help that says how it
// asks.
const deleteHelp = `
It takes one or more IDs. Unless --force is given it first checks that
each exists, then asks for confirmation on the terminal (y or yes deletes,
anything else cancels); with --force it deletes at once, each ID in turn,
and reports the ones that failed.`

// deleter deletes one kind of resource.
type deleter struct {
	// exists fails when id is not there (or not readable).
	exists func(ctx context.Context, id string) error
	del    func(ctx context.Context, id string) error
}

// apiDeleter deletes resources of the API's collection at path.
func apiDeleter(s *session, path string) deleter {
	return pathDeleter(s.client, func(id string) string { return path + "/" + url.PathEscape(id) })
}

// pathDeleter deletes the resource at at(id) of c's server, which a GET
// finds if it exists.
func pathDeleter(c *Client, at func(id string) string) deleter {
	return deleter{
		exists: func(ctx context.Context, id string) error { return c.Do(ctx, http.MethodGet, at(id), nil, nil) },
		del:    func(ctx context.Context, id string) error { return c.Do(ctx, http.MethodDelete, at(id), nil, nil) },
	}
}

// deleteCmd is the delete command of the API's collection at path: several
// IDs, a confirmation unless --force, and the context cleared of what was
// deleted.
func deleteCmd(g *globals, what, short, long string, ids cobra.CompletionFunc, path string) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:               "delete ID...",
		Short:             short,
		Long:              long + "\n" + deleteHelp,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: ids,
		RunE: g.run(func(cmd *cobra.Command, s *session, args []string) error {
			deleted, err := deleteAll(cmd.Context(), s, what, args, force, apiDeleter(s, path))
			if s.ctx != nil && s.ctx.forget(deleted...) {
				err = errors.Join(err, s.save())
			}
			return err
		}),
	}
	cmd.Flags().BoolVar(&force, "force", false, "delete without asking for confirmation")
	return cmd
}

// deleteAll deletes ids (a duplicate once) after the confirmation, and
// returns the ones deleted; an error names each that failed.
func deleteAll(ctx context.Context, s *session, what string, ids []string, force bool, d deleter) ([]string, error) {
	var unique []string
	for _, id := range ids {
		if err := requireID(what, id); err != nil {
			return nil, err
		}
		if !slices.Contains(unique, id) {
			unique = append(unique, id)
		}
	}
	ids = unique
	if !force {
		var missing []error
		for _, id := range ids {
			if err := d.exists(ctx, id); err != nil {
				missing = append(missing, fmt.Errorf("%s %q: %w", what, id, err))
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("nothing deleted: %w", errors.Join(missing...))
		}
		ok, err := confirm(s, fmt.Sprintf("Are you sure you want to delete %s?", naming(what, ids)))
		if err != nil || !ok {
			return nil, err
		}
	}
	var deleted []string
	var errs []error
	for _, id := range ids {
		if err := d.del(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("failed to delete %s %q: %w", what, id, err))
			continue
		}
		deleted = append(deleted, id)
	}
	if len(deleted) > 0 {
		if err := s.say("Deleted %s.\n", naming(what, deleted)); err != nil {
			errs = append(errs, err)
		}
	}
	return deleted, errors.Join(errs...)
}

// naming names resources as confluent's messages do: `topic "a"`,
// `topics "a", "b" and "c"`.
func naming(what string, ids []string) string {
	quoted := make([]string, len(ids))
	for i, id := range ids {
		quoted[i] = fmt.Sprintf("%q", id)
	}
	if len(ids) == 1 {
		return what + " " + quoted[0]
	}
	return what + "s " + strings.Join(quoted[:len(quoted)-1], ", ") + " and " + quoted[len(quoted)-1]
}

// confirm asks question on stderr and reads one line of input: y or yes
// (any case) is a yes, anything else a no, which is said on stderr.
func confirm(s *session, question string) (bool, error) {
	if _, err := fmt.Fprintf(s.errOut, "%s [y/N] ", question); err != nil {
		return false, err
	}
	line, err := bufio.NewReader(s.in).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return false, errors.New("no answer to the confirmation (the input is closed): nothing deleted; pass --force to delete without asking")
		}
		return false, fmt.Errorf("reading the confirmation: %w", err)
	}
	if Confirmed(line) {
		return true, nil
	}
	_, err = fmt.Fprintln(s.errOut, "Cancelled: nothing deleted.")
	return false, err
}

// Confirmed reports whether an answer to a confirmation is a yes: y or
// yes, in any case, surrounding white space ignored.
func Confirmed(answer string) bool {
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return true
	}
	return false
}
