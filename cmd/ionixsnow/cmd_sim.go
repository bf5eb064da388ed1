package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/servicenow/emulator"
)

func runServiceNowSim(e *env, args []string) int {
	fs := e.flagSet("servicenow-sim", "[--listen ADDR] [flags]\n\n"+
		"Runs the ServiceNow emulator. Every switch below can also be read and changed while it runs:\n"+
		"GET/PUT /sim/config (JSON, field names in brackets), POST /sim/reset clears the faults;\n"+
		"GET /sim/requests is the request log (time, status, fault), GET /sim/incidents the incidents.")
	cfgPath := fs.String("config", "", "YAML config `file` (only log settings are used)")
	listen := fs.String("listen", "127.0.0.1:8080", "listen `address` (host:port)")
	o := emulator.Options{}
	fs.StringVar(&o.ClientID, "client-id", "ionix", "OAuth client id")
	fs.StringVar(&o.ClientSecret, "client-secret", "ionix", "OAuth client secret")
	fs.StringVar(&o.Username, "user", "ionix", "integration user")
	fs.StringVar(&o.Password, "password", "ionix", "integration user's password")
	fs.StringVar(&o.ImportTable, "import-table", "u_ionix_action_item", "import set staging table")
	fs.StringVar(&o.FieldPrefix, "field-prefix", "u_", "staging field prefix")

	c := emulator.DefaultConfig()
	fs.IntVar(&c.NameBodyMaxLength, "field-max-length", c.NameBodyMaxLength,
		"max length of the name and body staging fields (40 as ServiceNow creates them) [name_body_max_length]")
	fs.BoolVar(&c.StagingAsCreated, "staging-as-created", false,
		"every staging column 40 long, correlation_id included, as before the setup step [staging_as_created]")
	durationVar(fs, &c.AccessTokenTTL, "access-token-ttl", "access token lifetime [access_token_ttl]")
	durationVar(fs, &c.RefreshTokenTTL, "refresh-token-ttl", "refresh token lifetime (100 days) [refresh_token_ttl]")
	fs.BoolVar(&c.RefreshOmitsRefreshToken, "refresh-omits-refresh-token", false,
		"refresh_token grants answer without a refresh_token [refresh_omits_refresh_token]")
	fs.BoolVar(&c.IgnoreUnchanged, "ignore-unchanged", false,
		"a coalesced row that changes nothing answers \"ignored\" [ignore_unchanged]")
	fs.BoolVar(&c.NoCoalesce, "no-coalesce", false,
		"the correlation_id field map lacks the Coalesce tick: every row inserts a new incident [no_coalesce]")
	fs.BoolVar(&c.UnmappedCorrelationID, "unmapped-correlation-id", false,
		"the transform map has no correlation_id field map: incidents get none, every row inserts [unmapped_correlation_id]")
	listVar(fs, &c.Roles, "roles", "the user's roles, comma-separated, \"none\" for none "+
		"(ionix_integration, import_transformer, itil, admin, personalize_dictionary) [roles]")
	listVar(fs, &c.MissingACLs, "missing-acls", "ACLs not created, comma-separated: create, write (staging table), "+
		"incident_read, dictionary_read [missing_acls]")
	fs.IntVar(&c.RateLimit.Requests, "rate-limit", 0, "rate limit rule: API requests per window per user, 0 for none [rate_limit.requests]")
	durationVar(fs, &c.RateLimit.Window, "rate-limit-window", "window of the rate limit rule [rate_limit.window]")
	fs.BoolVar(&c.Hibernating, "hibernating", false, "answer every request with the hibernation page (HTTP 200, HTML) [hibernating]")
	durationVar(fs, &c.Latency, "latency", "added to every request [latency]")
	durationVar(fs, &c.LatencyJitter, "latency-jitter", "random extra latency, up to this [latency_jitter]")
	fs.Float64Var(&c.ErrorRate, "error-rate", 0, "fraction (0-1) of imports answered with --error-status [error_rate]")
	fs.IntVar(&c.ErrorStatus, "error-status", c.ErrorStatus, "status of injected errors, 5xx [error_status]")
	fs.Int64Var(&c.Seed, "seed", 0, "seed of the random draws (jitter, error and drop rates) [seed]")
	fs.StringVar(&c.Outage.Mode, "outage", "", "outage from the start: \"503\" or \"reset\" (connections closed) [outage.mode]")
	durationVar(fs, &c.Outage.For, "outage-for", "length of the outage; 0 until switched off over /sim/config or /sim/reset [outage.for]")
	fs.IntVar(&c.DropResponses, "drop-responses", 0, "the next N imports are committed, then the connection closed without an answer [drop_responses]")
	fs.Float64Var(&c.DropRate, "drop-rate", 0, "fraction (0-1) of imports dropped after commit [drop_rate]")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if err := c.Validate(); err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow servicenow-sim: %v\n", strings.ReplaceAll(err.Error(), "\n", "; "))
		return exitUsage
	}
	cfg, code, ok := e.loadConfig(*cfgPath, config.Needs{})
	if !ok {
		return code
	}
	log := newLogger(cfg.Log, e.stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sim := emulator.New(o)
	if err := sim.SetConfig(c); err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow servicenow-sim: %v\n", err)
		return exitUsage
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", *listen)
	if err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow servicenow-sim: %v\n", err)
		return exitFailed
	}
	// The address listened on: with port 0, the one the system chose.
	fmt.Fprintf(e.stderr, "ServiceNow emulator on http://%s (client %q, user %q); requests at /sim/requests, "+
		"incidents at /sim/incidents, switches at /sim/config\n", ln.Addr(), o.ClientID, o.Username)
	if err := emulator.Serve(ctx, ln, sim, log); err != nil {
		fmt.Fprintf(e.stderr, "ionixsnow servicenow-sim: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// durationVar defines a duration flag on an emulator.Duration, its current
// value the default.
func durationVar(fs *flag.FlagSet, d *emulator.Duration, name, usage string) {
	fs.Func(name, fmt.Sprintf("%s (`duration`, default %s)", usage, time.Duration(*d)), func(s string) error {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = emulator.Duration(v)
		return nil
	})
}

// listVar defines a comma-separated list flag; "none" is the empty list.
func listVar(fs *flag.FlagSet, l *[]string, name, usage string) {
	def := strings.Join(*l, ",")
	if def == "" {
		def = "none"
	}
	fs.Func(name, fmt.Sprintf("%s (`list`, default %s)", usage, def), func(s string) error {
		out := []string{}
		for v := range strings.SplitSeq(s, ",") {
			if v = strings.TrimSpace(v); v != "" && v != "none" {
				out = append(out, v)
			}
		}
		*l = out
		return nil
	})
}
