package main

import (
	"strings"
	"testing"

	"github.com/ionix/ionixsnow/config"
)

// The deployment files (docker-compose.yml, deploy/Dockerfile, deploy/kubernetes,
// deploy/README.md) run the ionixsnow binary with arguments and environment that
// nothing compiles. These tests hold them to the binary: every subcommand and flag
// they use must be one `ionixsnow <command> -h` lists, every IONIXSNOW_* variable
// must name a configuration key, and the configuration each container ends up with
// (its config file, its environment, its secret files) must load and validate as the
// command it runs requires.
//
// The tests are in this file; what they read and check is beside it:
//   - deploy_invocations_test.go: every run of the binary the files describe
//   - deploy_flags_test.go: the commands and flags `ionixsnow <command> -h` lists
//   - deploy_config_test.go: the configuration's variables, and the configuration
//     an invocation loads
//   - deploy_compose_test.go: docker-compose.yml
//   - deploy_k8s_test.go: deploy/kubernetes, read into invocations
//   - deploy_k8s_checks_test.go: what the pod specs rely on in the configuration
//   - deploy_yaml_test.go: YAML as map[string]any

// TestDeployUsesRealCommandsAndFlags: every subcommand and flag the deployment files
// pass to the binary is one it has (`ionixsnow <command> -h`).
func TestDeployUsesRealCommandsAndFlags(t *testing.T) {
	root := repoRoot(t)
	invs := allDeployInvocations(t, root)
	seen := map[string]bool{}
	for _, inv := range invs {
		seen[inv.where] = true
		t.Logf("%s: ionixsnow %s", inv.where, strings.Join(inv.args, " "))
		for _, p := range checkArgs(inv.args) {
			t.Errorf("%s: `ionixsnow %s`: %s", inv.where, strings.Join(inv.args, " "), p)
		}
	}
	// The files this test is about must have been found at all.
	for _, want := range []string{"deploy/Dockerfile CMD", "docker-compose.yml service ", "deploy/kubernetes/", "deploy/README.md:"} {
		found := false
		for w := range seen {
			found = found || strings.HasPrefix(w, want)
		}
		if !found {
			t.Errorf("no ionixsnow invocation found in %s", want)
		}
	}
}

// TestDeployEnvironmentVariablesNameKeys: every IONIXSNOW_* variable the deployment
// files set is one the configuration reads, and every _FILE variable names a secret.
func TestDeployEnvironmentVariablesNameKeys(t *testing.T) {
	root := repoRoot(t)
	known, secretFiles := configEnvNames(t)
	invs := allDeployInvocations(t, root)
	n := 0
	for _, inv := range invs {
		for name := range inv.env {
			if !strings.HasPrefix(name, config.EnvPrefix) {
				continue
			}
			n++
			base, isFile := strings.CutSuffix(name, "_FILE")
			switch {
			case known[name]:
			case isFile && known[base]:
				t.Errorf("%s: %s: only secrets can be read from a file (%s)", inv.where, name, strings.Join(sortedKeys(secretFiles), ", "))
			default:
				msg := "names no configuration key"
				if err := config.UnknownEnv([]string{name + "=x"}); err != nil {
					msg = err.Error()
				}
				t.Errorf("%s: %s", inv.where, msg)
			}
		}
	}
	if n == 0 {
		t.Error("no IONIXSNOW_* variable found in the deployment files")
	}
}

// TestDeployConfigurationsLoad: each container's configuration (its config file as
// mounted, its environment, its secret files) loads and passes the validation of the
// command it runs; and the settings the manifests depend on agree with it.
func TestDeployConfigurationsLoad(t *testing.T) {
	root := repoRoot(t)
	t.Run("compose", func(t *testing.T) { checkComposeConfigurations(t, root) })
	t.Run("kubernetes", func(t *testing.T) { checkK8sConfigurations(t, root) })
}
