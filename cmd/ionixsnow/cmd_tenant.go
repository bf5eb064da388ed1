package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/doctor"
	"github.com/ionix/ionixsnow/secrets"
	"github.com/ionix/ionixsnow/tenant"
	"github.com/ionix/ionixsnow/topology"
)

const tenantUsage = `Usage: ionixsnow tenant <subcommand> [T] [--config FILE] [flags]

Each customer's integration (SPEC §9), kept in the KV bucket ionix_integrations with its
secrets sealed by the keyset of secrets.keyset_file. T is the IONIX account, lower-cased.

Subcommands:
  put T --file F [--clear KEY ...]  create or replace T's settings (YAML or JSON with the
                                    sections servicenow, filter, cap, consumer, ionix); a new
                                    tenant starts inactive; secrets it does not mention are kept
  get T [--json]                    T's settings, secrets shown as "set"
  list [--json]                     every tenant: active, instance, categories, threshold, cap
  activate T | deactivate T         start or stop T's sends (its backlog stays on the stream)
  delete T [--yes]                  remove T's settings (its stream messages stay until MaxAge)
  test T [--send-test] [--json]     doctor for T: its instance, OAuth, table, ACLs, field lengths

Run 'ionixsnow tenant <subcommand> -h' for its flags.
`

func runTenant(e *env, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, "ionixsnow tenant: a subcommand is required\n\n"+tenantUsage)
		return exitUsage
	}
	switch args[0] {
	case "put":
		return runTenantPut(e, args[1:])
	case "get":
		return runTenantGet(e, args[1:])
	case "list":
		return runTenantList(e, args[1:])
	case "activate":
		return runTenantActivate(e, args[1:], true)
	case "deactivate":
		return runTenantActivate(e, args[1:], false)
	case "delete":
		return runTenantDelete(e, args[1:])
	case "test":
		return runTenantTest(e, args[1:])
	case "help", "-h", "--help":
		fmt.Fprint(e.stdout, tenantUsage)
		return exitOK
	}
	fmt.Fprintf(e.stderr, "ionixsnow tenant: unknown subcommand %q\n\n%s", args[0], tenantUsage)
	return exitUsage
}

// parseTenantArgs parses a subcommand's flags around its tenant id (given before or
// after the flags) and returns the id.
func parseTenantArgs(e *env, fs *flag.FlagSet, args []string) (string, int, bool) {
	// Flags may come before and after the id: parse, take the first argument left
	// as the id, and parse what follows it.
	var id string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return "", exitOK, false
			}
			return "", exitUsage, false
		}
		args = fs.Args()
		if id != "" || len(args) == 0 {
			break
		}
		id, args = args[0], args[1:]
	}
	if len(args) > 0 {
		fmt.Fprintf(e.stderr, "unexpected arguments: %s\n", strings.Join(args, " "))
		return "", exitUsage, false
	}
	if id == "" {
		fmt.Fprintln(e.stderr, "a tenant id is required")
		fs.Usage()
		return "", exitUsage, false
	}
	parsed, err := tenant.ParseID(id)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow %s: %v\n", fs.Name(), err)
		return "", exitUsage, false
	}
	return parsed, 0, true
}

// tenantSession is a connection to NATS and the tenants' store behind it.
type tenantSession struct {
	conn  *natsConn
	store *tenant.Store
	cfg   config.Config
	keys  *secrets.Keyset // nil without secrets.keyset_file
}

// tenantOpen loads the deployment's configuration, reads its keyset (when
// needKeys, or when one is configured), connects to NATS and makes sure the bucket
// exists.
func (e *env) tenantOpen(ctx context.Context, cmd, cfgPath string, needKeys bool) (*tenantSession, int, bool) {
	cfg, code, ok := e.loadDeploymentConfig(cmd, cfgPath)
	if !ok {
		return nil, code, false
	}
	var keys *secrets.Keyset
	switch {
	case cfg.Secrets.KeysetFile != "":
		k, err := loadKeyset(cfg.Secrets.KeysetFile, newLogger(cfg.Log, e.stderr))
		if err != nil {
			fmt.Fprintf(e.stderr, "ionixsnow %s: secrets.keyset_file: %v\n", cmd, err)
			return nil, exitUsage, false
		}
		keys = k
	case needKeys:
		fmt.Fprintf(e.stderr, "ionixsnow %s: %v\n", cmd, tenant.ErrNoKeys)
		return nil, exitUsage, false
	}
	log := newLogger(cfg.Log, e.stderr)
	conn, err := connectNATS(cfg.NATS, log, true)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow %s: %v\n", cmd, err)
		return nil, exitFailed, false
	}
	var bucket jetstream.KeyValue
	if err := retryWhileStarting(ctx, func(ctx context.Context) (err error) {
		bucket, err = topology.EnsureIntegrations(ctx, conn.js, topologyOptions(cfg))
		return err
	}); err != nil {
		conn.Close()
		fmt.Fprintf(e.stderr, "ionixsnow %s: %v\n", cmd, err)
		return nil, exitFailed, false
	}
	var k tenant.Keys
	if keys != nil {
		k = keys
	}
	return &tenantSession{conn: conn, store: tenant.NewStore(bucket, k, secrets.AssociatedData), cfg: cfg, keys: keys}, 0, true
}

// loadDeploymentConfig loads the deployment's configuration for a tenant command:
// problems of the tenant keys (the single-tenant form's servicenow section, whose
// IONIXSNOW_SERVICENOW_* variables a put may be given for the tenant) are not its
// business.
func (e *env) loadDeploymentConfig(cmd, path string) (config.Config, int, bool) {
	cfg, warnings, err := config.LoadEnviron(path, e.environ, config.Needs{})
	var left config.Problems
	for _, p := range config.AsProblems(err) {
		if !config.IsTenantKey(strings.TrimSuffix(p.Key, "_file")) {
			left = append(left, p)
		}
	}
	if err != nil && config.AsProblems(err) == nil {
		left = append(left, config.Problem{Key: path, Message: err.Error()})
	}
	if len(left) > 0 {
		fmt.Fprintf(e.stderr, "ionixsnow %s: configuration problems:\n%s\n", cmd, indent(left.Error()))
		return cfg, exitUsage, false
	}
	log := newLogger(cfg.Log, e.stderr)
	for _, w := range warnings {
		if !config.IsTenantKey(strings.TrimSuffix(w.Key, "_file")) {
			log.Warn().Str("key", w.Key).Msg(w.Message)
		}
	}
	return cfg, 0, true
}

func runTenantPut(e *env, args []string) int {
	fs := e.flagSet("tenant put", "T --file F [--clear KEY ...] [--activate] [--config FILE]")
	cfgPath := fs.String("config", "", "the deployment's YAML config `file` (NATS, secrets.keyset_file)")
	file := fs.String("file", "", "the tenant's settings: a YAML or JSON `file` with the sections servicenow, filter, cap, consumer, ionix")
	var clear multiFlag
	fs.Var(&clear, "clear", "drop a stored secret the file does not give (servicenow.password, servicenow.refresh_token, servicenow.client_secret, ionix.token); repeatable")
	activate := fs.Bool("activate", false, "activate the tenant once its settings are stored (the put and tenant activate in one step)")
	id, code, ok := parseTenantArgs(e, fs, args)
	if !ok {
		return code
	}
	if *file == "" {
		fmt.Fprintln(e.stderr, "ionixsnow tenant put: --file is required")
		fs.Usage()
		return exitUsage
	}
	if id == tenant.Default {
		fmt.Fprintf(e.stderr, "ionixsnow tenant put: %v\n", tenant.ErrDefaultTenant)
		return exitUsage
	}
	for _, f := range clear {
		if !slices.Contains(tenant.SecretFields, f) {
			fmt.Fprintf(e.stderr, "ionixsnow tenant put: --clear %s: not a secret field; one of %s\n", f, strings.Join(tenant.SecretFields, ", "))
			return exitUsage
		}
	}
	cfg, warnings, err := config.LoadTenant(*file, e.environ)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow tenant put: problems in %s:\n%s\n", *file, indent(err.Error()))
		return exitUsage
	}
	for _, w := range warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", w)
	}
	ctx, stop := dlqSignalContext()
	defer stop()
	s, code, ok := e.tenantOpen(ctx, "tenant put", *cfgPath, false)
	if !ok {
		return code
	}
	defer s.conn.Close()
	res, err := s.store.Put(ctx, id, tenant.FromConfig(cfg), clear)
	switch {
	case config.AsProblems(err) != nil:
		fmt.Fprintf(e.stderr, "ionixsnow tenant put: problems with tenant %s:\n%s\n", id, indent(err.Error()))
		return exitUsage
	case errors.Is(err, tenant.ErrNoKeys):
		fmt.Fprintf(e.stderr, "ionixsnow tenant put: %v\n", err)
		return exitUsage
	case err != nil:
		fmt.Fprintf(e.stderr, "ionixsnow tenant put: %v\n", err)
		return exitFailed
	}
	if *activate {
		if _, err := s.store.SetActive(ctx, id, true); err != nil {
			fmt.Fprintf(e.stderr, "ionixsnow tenant put: stored, but activating it failed (run `ionixsnow tenant activate %s`): %v\n", id, err)
			return exitFailed
		}
	}
	view, err := s.store.View(ctx, id)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow tenant put: stored, but reading it back failed: %v\n", err)
		return exitFailed
	}
	switch {
	case res.Created && view.Active:
		fmt.Fprintf(e.stdout, "tenant %s created, active\n", id)
	case res.Created:
		fmt.Fprintf(e.stdout, "tenant %s created, inactive: check it with `ionixsnow tenant test %s --send-test`, then `ionixsnow tenant activate %s`\n", id, id, id)
	default:
		fmt.Fprintf(e.stdout, "tenant %s replaced (%s)\n", id, activeWord(view.Active))
	}
	if len(res.Kept) > 0 {
		fmt.Fprintf(e.stdout, "kept the stored %s (not in %s)\n", strings.Join(res.Kept, ", "), *file)
	}
	return exitOK
}

func runTenantGet(e *env, args []string) int {
	fs := e.flagSet("tenant get", "T [--json] [--config FILE]")
	cfgPath := fs.String("config", "", "the deployment's YAML config `file`")
	asJSON := fs.Bool("json", false, "print the settings as JSON (secrets shown as \"set\")")
	id, code, ok := parseTenantArgs(e, fs, args)
	if !ok {
		return code
	}
	ctx, stop := dlqSignalContext()
	defer stop()
	s, code, ok := e.tenantOpen(ctx, "tenant get", *cfgPath, false)
	if !ok {
		return code
	}
	defer s.conn.Close()
	view, err := s.store.View(ctx, id)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow tenant get: %v\n", err)
		return exitFailed
	}
	if *asJSON {
		return e.printJSON(tenantJSON{Tenant: id, Settings: view})
	}
	printTenant(e.stdout, id, view)
	return exitOK
}

// tenantJSON is one tenant as get and list print it: its id, then its settings (or
// why they cannot be read).
type tenantJSON struct {
	Tenant   string          `json:"tenant"`
	Settings tenant.Settings `json:"-"`
	Error    string          `json:"error,omitempty"`
}

func (t tenantJSON) MarshalJSON() ([]byte, error) {
	if t.Error != "" {
		type plain tenantJSON
		return json.Marshal(plain(t))
	}
	b, err := t.Settings.MarshalJSON()
	if err != nil {
		return nil, err
	}
	id, _ := json.Marshal(t.Tenant)
	return append(append([]byte(`{"tenant":`), id...), append([]byte{','}, b[1:]...)...), nil
}

func printTenant(w io.Writer, id string, s tenant.Settings) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	show := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	show("tenant", id)
	show("active", fmt.Sprint(s.Active))
	show("updated_at", s.UpdatedAt.UTC().Format(time.RFC3339))
	sn := s.ServiceNow
	show("servicenow.instance_url", sn.InstanceURL)
	show("servicenow.client_id", sn.ClientID)
	show("servicenow.client_secret", orNotSet(sn.ClientSecret))
	show("servicenow.username", sn.Username)
	show("servicenow.password", orNotSet(sn.Password))
	show("servicenow.refresh_token", orNotSet(sn.RefreshToken))
	show("servicenow.import_table", sn.ImportTable)
	show("servicenow.field_prefix", sn.FieldPrefix)
	show("servicenow.timeout", time.Duration(sn.Timeout).String())
	show("servicenow.allow_insecure_http", fmt.Sprint(sn.AllowInsecureHTTP))
	show("filter.categories", categoriesText(s.Filter.Categories))
	show("filter.urgency_threshold", fmt.Sprint(s.Filter.UrgencyThreshold))
	show("cap", capText(s.Cap))
	show("consumer.resolve_on_close", fmt.Sprint(s.Consumer.ResolveOnClose))
	show("ionix.api_url", s.IONIX.APIURL)
	show("ionix.account", s.IONIX.Account)
	show("ionix.token", orNotSet(s.IONIX.Token))
	_ = tw.Flush()
}

func runTenantList(e *env, args []string) int {
	fs := e.flagSet("tenant list", "[--json] [--config FILE]")
	cfgPath := fs.String("config", "", "the deployment's YAML config `file`")
	asJSON := fs.Bool("json", false, "print a JSON array of the tenants' settings (secrets shown as \"set\")")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	ctx, stop := dlqSignalContext()
	defer stop()
	s, code, ok := e.tenantOpen(ctx, "tenant list", *cfgPath, false)
	if !ok {
		return code
	}
	defer s.conn.Close()
	entries, err := s.store.List(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow tenant list: %v\n", err)
		return exitFailed
	}
	if *asJSON {
		out := make([]tenantJSON, 0, len(entries))
		for _, en := range entries {
			j := tenantJSON{Tenant: en.ID, Settings: en.Settings}
			if en.Err != nil {
				j.Error = en.Err.Error()
			}
			out = append(out, j)
		}
		return e.printJSON(out)
	}
	if len(entries) == 0 {
		fmt.Fprintln(e.stdout, "no tenants (add one with `ionixsnow tenant put T --file F`)")
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tACTIVE\tINSTANCE\tCATEGORIES\tTHRESHOLD\tCAP")
	for _, en := range entries {
		st := en.Settings
		if en.Err != nil {
			fmt.Fprintf(tw, "%s\t?\tunreadable settings: put them again or delete the tenant\t\t\t\n", en.ID)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%g\t%s\n", en.ID, yesNo(st.Active), st.ServiceNow.InstanceURL,
			categoriesText(st.Filter.Categories), st.Filter.UrgencyThreshold, capText(st.Cap))
	}
	_ = tw.Flush()
	return exitOK
}

func runTenantActivate(e *env, args []string, active bool) int {
	verb := map[bool]string{true: "activate", false: "deactivate"}[active]
	fs := e.flagSet("tenant "+verb, "T [--config FILE]")
	cfgPath := fs.String("config", "", "the deployment's YAML config `file`")
	id, code, ok := parseTenantArgs(e, fs, args)
	if !ok {
		return code
	}
	ctx, stop := dlqSignalContext()
	defer stop()
	s, code, ok := e.tenantOpen(ctx, "tenant "+verb, *cfgPath, false)
	if !ok {
		return code
	}
	defer s.conn.Close()
	changed, err := s.store.SetActive(ctx, id, active)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow tenant %s: %v\n", verb, err)
		return exitFailed
	}
	switch {
	case !changed:
		fmt.Fprintf(e.stdout, "tenant %s was already %s\n", id, activeWord(active))
	case active:
		fmt.Fprintf(e.stdout, "tenant %s activated: consume starts its sends within 5 s\n", id)
	default:
		fmt.Fprintf(e.stdout, "tenant %s deactivated: consume stops its sends within 5 s; its backlog stays on the stream\n", id)
	}
	return exitOK
}

func runTenantDelete(e *env, args []string) int {
	fs := e.flagSet("tenant delete", "T [--yes] [--config FILE]")
	cfgPath := fs.String("config", "", "the deployment's YAML config `file`")
	yes := fs.Bool("yes", false, "delete without asking (required when stdin is not a terminal)")
	id, code, ok := parseTenantArgs(e, fs, args)
	if !ok {
		return code
	}
	interactive := dlqStdinIsTerminal(e.stdin)
	if !*yes && !interactive {
		fmt.Fprintln(e.stderr, "ionixsnow tenant delete: stdin is not a terminal to confirm on; pass --yes to delete the tenant's settings")
		return exitUsage
	}
	ctx, stop := dlqSignalContext()
	defer stop()
	s, code, ok := e.tenantOpen(ctx, "tenant delete", *cfgPath, false)
	if !ok {
		return code
	}
	defer s.conn.Close()
	if _, err := s.store.View(ctx, id); err != nil && !errors.Is(err, tenant.ErrCorrupt) {
		fmt.Fprintf(e.stderr, "ionixsnow tenant delete: %v\n", err)
		return exitFailed
	}
	if !*yes {
		fmt.Fprintf(e.stderr, "delete the settings of tenant %s (its sends stop; its messages stay on the stream)? [y/N] ", id)
		answer, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			fmt.Fprintln(e.stdout, "nothing deleted")
			return exitOK
		}
	}
	if err := s.store.Delete(ctx, id); err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow tenant delete: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(e.stdout, "tenant %s deleted\n", id)
	return exitOK
}

// runTenantTest is doctor for one tenant: the deployment's configuration with the
// tenant's settings in it.
func runTenantTest(e *env, args []string) int {
	fs := e.flagSet("tenant test", "T [--send-test] [--json] [--config FILE]")
	cfgPath := fs.String("config", "", "the deployment's YAML config `file` (NATS, secrets.keyset_file)")
	sendTest := fs.Bool("send-test", false, "also send a marked test item to T's instance and read its incident back")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	id, code, ok := parseTenantArgs(e, fs, args)
	if !ok {
		return code
	}
	ctx, stop := dlqSignalContext()
	defer stop()
	s, code, ok := e.tenantOpen(ctx, "tenant test", *cfgPath, true)
	if !ok {
		return code
	}
	defer s.conn.Close()
	st, err := s.store.Get(ctx, id)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow tenant test: %v\n", err)
		return exitFailed
	}
	cfg := st.Config(s.cfg)
	cfg.NATS.Consumer = tenantTopologyOptions(cfg, id).Names.Consumer // its own durable consumer
	log := newLogger(config.Log{Level: "error", Format: cfg.Log.Format}, e.stderr)
	return e.reportDoctor(doctor.Run(ctx, doctor.Options{Config: cfg, SendTest: *sendTest, Log: log, JS: s.conn.js}), *asJSON)
}

// tenantConfig is the deployment's configuration with tenant t's settings in it, read
// from the bucket (without creating it); with secrets, they are opened with the
// keyset of secrets.keyset_file.
func tenantConfig(ctx context.Context, conn *natsConn, cfg config.Config, t string, withSecrets bool, log zerolog.Logger) (config.Config, error) {
	if !withSecrets {
		store, err := readOnlyTenants(ctx, conn, cfg, nil)
		if err != nil {
			return cfg, err
		}
		st, err := store.View(ctx, t)
		return st.Config(cfg), err
	}
	if cfg.Secrets.KeysetFile == "" {
		return cfg, tenant.ErrNoKeys
	}
	keys, err := loadKeyset(cfg.Secrets.KeysetFile, log)
	if err != nil {
		return cfg, fmt.Errorf("secrets.keyset_file: %w", err)
	}
	store, err := readOnlyTenants(ctx, conn, cfg, keys)
	if err != nil {
		return cfg, err
	}
	st, err := store.Get(ctx, t)
	return st.Config(cfg), err
}

// loadKeyset reads the keyset file, warning when others may read it (it is the root
// secret of every tenant's credentials).
func loadKeyset(path string, log zerolog.Logger) (*secrets.Keyset, error) {
	k, err := secrets.Load(path)
	if err != nil {
		return nil, err
	}
	if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
		log.Warn().Str("key", "secrets.keyset_file").Msgf("%s can be read or changed by others (mode %04o); it is the root secret of every tenant's credentials: chmod 600 it", path, info.Mode().Perm())
	}
	return k, nil
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func activeWord(active bool) string {
	if active {
		return "active"
	}
	return "inactive"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orNotSet(secret string) string {
	if secret == "" {
		return "(not set)"
	}
	return secret // "set": View never returns a secret
}

func categoriesText(cats []string) string {
	if len(cats) == 0 {
		return "all"
	}
	return strings.Join(cats, ",")
}

func capText(c tenant.Cap) string {
	return fmt.Sprintf("%d/%s", c.MaxPerWindow, time.Duration(c.Window))
}
