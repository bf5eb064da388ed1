package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Every run of the binary the deployment files describe: the image's default
// command (deploy/Dockerfile), the compose services (deploy_compose_test.go), the
// Kubernetes containers (deploy_k8s_test.go) and the command lines of deploy/README.md.

// deployInvocation is one run of the ionixsnow binary described by a deployment file.
type deployInvocation struct {
	where string            // for messages: file and service or container
	args  []string          // after the binary: subcommand, flags
	env   map[string]string // literal values; secret references resolved to placeholders
	// files maps a path inside the container to its content (config files, secret
	// files), as far as the manifest mounts them; fileErrs explains paths that are
	// referenced but not mounted.
	files    map[string]string
	fileErrs map[string]string
	hostPath func(containerPath string) (string, bool) // compose bind mounts
}

func (inv deployInvocation) subcommand() string {
	if len(inv.args) == 0 {
		return ""
	}
	return inv.args[0]
}

// read returns the content of a file inside the container.
func (inv deployInvocation) read(p string) (string, error) {
	if c, ok := inv.files[p]; ok {
		return c, nil
	}
	if msg, ok := inv.fileErrs[p]; ok {
		return "", errors.New(msg)
	}
	if inv.hostPath != nil {
		if hp, ok := inv.hostPath(p); ok {
			b, err := os.ReadFile(hp)
			return string(b), err
		}
	}
	return "", errors.New("no such file in the container (not mounted by the manifest)")
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	return root
}

// allDeployInvocations gathers every run of the binary the deployment files describe.
// Problems of the files' structure are reported by TestDeployConfigurationsLoad.
func allDeployInvocations(t *testing.T, root string) []deployInvocation {
	t.Helper()
	invs := []deployInvocation{{where: "deploy/Dockerfile CMD", args: dockerfileCmd(t, root)}}
	services, _ := composeInvocations(t, root)
	for _, s := range services {
		if s.inv != nil {
			invs = append(invs, *s.inv)
		}
	}
	for _, c := range loadK8s(t, root).containers(t, root) {
		invs = append(invs, c.inv)
	}
	return append(invs, readmeInvocations(t, root)...)
}

// ---------------------------------------------------------------------------
// deploy/Dockerfile

// dockerfileCmd returns the default command of the image (CMD of deploy/Dockerfile),
// after checking that its entrypoint is the binary.
func dockerfileCmd(t *testing.T, root string) []string {
	t.Helper()
	ep, cmd := dockerfileEntrypoint(t, root)
	if !slices.Equal(ep, []string{"/ionixsnow"}) {
		t.Errorf("deploy/Dockerfile: ENTRYPOINT %q, want [\"/ionixsnow\"] (the manifests pass only the subcommand)", ep)
	}
	return cmd
}

func dockerfileEntrypoint(t *testing.T, root string) (entrypoint, cmd []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Instructions of the final stage; exec (JSON) form only.
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		instr, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			entrypoint, cmd = nil, nil
		case "ENTRYPOINT", "CMD":
			var v []string
			if err := json.Unmarshal([]byte(strings.TrimSpace(rest)), &v); err != nil {
				t.Fatalf("deploy/Dockerfile: %s must be in exec form, a JSON array: %s", instr, rest)
			}
			if strings.EqualFold(instr, "CMD") {
				cmd = v
			} else {
				entrypoint = v
			}
		}
	}
	return entrypoint, cmd
}

// ---------------------------------------------------------------------------
// deploy/README.md: the ionixsnow command lines in its code blocks.

func readmeInvocations(t *testing.T, root string) []deployInvocation {
	t.Helper()
	p := filepath.Join(root, "deploy", "README.md")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var out []deployInvocation
	inBlock := false
	for i, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inBlock = !inBlock
			continue
		}
		if !inBlock {
			continue
		}
		if c := strings.Index(line, " #"); c >= 0 {
			line = line[:c]
		}
		fields := strings.Fields(line)
		for j, f := range fields {
			// The binary: /ionixsnow (in the image), or ionixsnow at the start of a
			// command, not as an argument (a namespace, say).
			atStart := j == 0 || slices.Contains([]string{"--", "|", "&&", ";", "$"}, fields[j-1])
			if f != "/ionixsnow" && (f != "ionixsnow" || !atStart) {
				continue
			}
			var args []string
			for _, a := range fields[j+1:] {
				if slices.Contains([]string{"|", "&&", ";", "||", ">", "2>&1", "\\"}, a) {
					break
				}
				args = append(args, a)
			}
			if len(args) == 0 || strings.HasPrefix(args[0], "<") {
				continue
			}
			out = append(out, deployInvocation{where: fmt.Sprintf("deploy/README.md:%d", i+1), args: args})
			break
		}
	}
	return out
}
