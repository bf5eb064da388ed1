package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/doctor"
	"github.com/ionix/ionixsnow/tenant"
)

// runDoctor runs doctor's checks and prints one line per check, or with --json
// the results as a JSON array (a configuration that does not load is a
// jsonFailure object instead). Exit 0 when no check failed, 1 when one did, 2 on
// bad flags or configuration.
func runDoctor(e *env, args []string) int {
	fs := e.flagSet("doctor", "[--config FILE] [--send-test] [--json]")
	cfgPath := fs.String("config", "", "YAML config `file`")
	sendTest := fs.Bool("send-test", false, "also send a marked test item and read its incident back")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	tenantFlag := fs.String("tenant", tenant.Default, "check tenant `T`'s instance with its settings (SPEC §9; as `tenant test T`); default: the single-tenant form")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *tenantFlag != tenant.Default {
		targs := []string{*tenantFlag, "--config", *cfgPath}
		if *sendTest {
			targs = append(targs, "--send-test")
		}
		if *asJSON {
			targs = append(targs, "--json")
		}
		return runTenantTest(e, targs)
	}
	cfg, code, ok := e.loadConfigAs(*cfgPath, config.Needs{ServiceNow: true}, *asJSON)
	if !ok {
		return code
	}
	log := newLogger(config.Log{Level: "error", Format: cfg.Log.Format}, e.stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	o := doctor.Options{Config: cfg, SendTest: *sendTest, Log: log}
	conn, err := connectNATS(cfg.NATS, log, false)
	if err != nil {
		o.NATSErr = err
	} else {
		defer conn.Close()
		o.JS = conn.js
	}
	return e.reportDoctor(doctor.Run(ctx, o), *asJSON)
}

// reportDoctor prints doctor's results (a JSON array with asJSON, else a line a
// check) and returns the exit code: 0 when no check failed, else 1.
func (e *env) reportDoctor(results []doctor.Result, asJSON bool) int {
	if asJSON {
		_ = e.printJSON(results)
	} else {
		doctor.Print(e.stdout, results)
	}
	if !doctor.Passed(results) {
		return exitFailed
	}
	return exitOK
}
