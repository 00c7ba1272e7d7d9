package archtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCIRunsTheREADMETestCommand keeps the README's promise: a fresh clone
// needs exactly two commands of its quick start, one that starts the system
// and one that runs every test, and CI runs that test command and nothing
// else, so that what passes in CI is what a newcomer runs.
func TestCIRunsTheREADMETestCommand(t *testing.T) {
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	run, err := os.ReadFile(filepath.Join(root, ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkQuickStart(string(readme), string(run)); err != nil {
		t.Fatal(err)
	}
}

// TestCheckQuickStartCatchesADrift shows the check fails on the drifts it
// exists for.
func TestCheckQuickStartCatchesADrift(t *testing.T) {
	const readme = "# M\n\n## Quick start\n\n```sh\ngo run ./cmd/mothership dev\n```\n\n```sh\n./test.sh\n```\n\n## Next\n\n```sh\nmake other\n```\n"
	const run = "#!/usr/bin/env bash\n# CI.\nset -euo pipefail\ncd \"$(dirname \"$0\")/..\"\nexec ./test.sh\n"
	tests := map[string]struct {
		reason      string
		readme, run string
		want        string // in the error; "" for none
	}{
		"same command": {
			reason: "the README's test command is the one .ci/run runs",
			readme: readme, run: run,
		},
		"other test command": {
			reason: "the README tells a newcomer to run something CI does not",
			readme: strings.Replace(readme, "./test.sh", "go test ./...", 1), run: run,
			want: `README's test command is "go test ./..."`,
		},
		"CI installs first": {
			reason: "CI does set-up of its own, which a newcomer would not get",
			readme: readme, run: strings.Replace(run, "exec", "apt-get install -y kcat\nexec", 1),
			want: "2 commands",
		},
		"a third command": {
			reason: "the quick start asks for a set-up step by hand",
			readme: strings.Replace(readme, "./test.sh", "apt-get install postgresql\n./test.sh", 1), run: run,
			want: "3 commands",
		},
		"no quick start": {
			reason: "the section was renamed: nothing would be checked",
			readme: strings.Replace(readme, "## Quick start", "## Start", 1), run: run,
			want: "no section",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := checkQuickStart(tc.readme, tc.run)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("%s: checkQuickStart = %v, want nil", tc.reason, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("%s: checkQuickStart = %v, want an error with %q", tc.reason, err, tc.want)
			}
		})
	}
}

// checkQuickStart returns an error unless the README's quick start has
// exactly two commands, starting the system and running the tests, and
// .ci/run runs the second and nothing else.
func checkQuickStart(readme, run string) error {
	cmds, err := quickStartCommands(readme)
	if err != nil {
		return err
	}
	if len(cmds) != 2 {
		return fmt.Errorf("the README's quick start has %d commands %q, want 2: one that starts the system and one that runs every test, each doing its own set-up", len(cmds), cmds)
	}
	ci, err := ciCommand(run)
	if err != nil {
		return err
	}
	if cmds[1] != ci {
		return fmt.Errorf("the README's test command is %q and .ci/run runs %q: they must be the same command", cmds[1], ci)
	}
	return nil
}

// quickStartCommands returns the lines of the shell blocks of the README's
// "## Quick start" section, in order.
func quickStartCommands(readme string) ([]string, error) {
	var cmds []string
	in, found, block := false, false, false
	for line := range strings.Lines(readme) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "## ") {
			in = strings.HasPrefix(line, "## Quick start")
			found = found || in
			continue
		}
		switch {
		case !in:
		case strings.HasPrefix(line, "```"):
			block = !block
		case block && line != "":
			cmds = append(cmds, line)
		}
	}
	if !found {
		return nil, errors.New(`the README has no section "## Quick start"`)
	}
	return cmds, nil
}

// ciCommand returns the one command .ci/run runs: its lines but comments,
// blank lines, `set` and `cd`, without a leading exec.
func ciCommand(run string) (string, error) {
	var cmds []string
	for line := range strings.Lines(run) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "set ") || strings.HasPrefix(line, "cd ") {
			continue
		}
		cmds = append(cmds, strings.TrimPrefix(line, "exec "))
	}
	if len(cmds) != 1 {
		return "", fmt.Errorf(".ci/run has %d commands %q, want 1: the README's test command, which does its own set-up", len(cmds), cmds)
	}
	return cmds[0], nil
}
