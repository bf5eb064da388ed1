package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/servicenow"
)

// Options are what doctor checks.
type Options struct {
	Config config.Config
	// JS is the JetStream context, nil when NATS could not be reached (NATSErr says why).
	JS      jetstream.JetStream
	NATSErr error
	// SendTest sends a marked test item and reads back its incident.
	SendTest bool
	// HTTPClient makes the reachability and credential probes (default: 15s timeout).
	HTTPClient *http.Client
	Log        zerolog.Logger
}

// Fixes for the checks outside the ServiceNow client's own.
const (
	fixNATS = "start the NATS server (or `ionixsnow consume`, which runs an embedded one when nats.url is empty) " +
		"and check nats.url and nats.creds_file"
	fixJetStream = "enable JetStream on the NATS server (`-js`, or a `jetstream {}` block in its config)"
	fixTopology  = "none needed: `ionixsnow consume` and `ionixsnow publish` create it on their first run"
	fixDown      = "the instance is down or under maintenance: check its status (ServiceNow: status.servicenow.com, or your " +
		"ServiceNow administrator) and run doctor again once it answers"
	fixHibernate  = "wake the instance (developer instances hibernate when idle: log in at developer.servicenow.com)"
	fixFieldSize  = "System Definition > Tables > ionix_action_item: set the max length of name and body to 4000 and of correlation_id to 100 (README step 3)"
	fixReadAccess = "optional: give the integration user read access to incident (e.g. the itil role) so doctor can read the test incident back"
)

// Run runs every check in order and returns their results. Checks that need an
// earlier one to pass are skipped when it failed.
func Run(ctx context.Context, o Options) []Result {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{
			Timeout:       15 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	var rs []Result
	rs = append(rs, checkNATS(ctx, o)...)
	snowCfg := o.Config.ServiceNow.Client()
	url := checkURL(ctx, o, snowCfg)
	rs = append(rs, url)
	if url.Status == StatusFail {
		return append(rs, skipped("oauth", "the instance is not reachable"))
	}
	client, err := servicenow.New(snowCfg, o.Log)
	if err != nil {
		return append(rs, Result{Check: "oauth", Status: StatusFail, Detail: err.Error(), Fix: "correct the servicenow section of the configuration"})
	}
	auth := checkOAuth(ctx, o, snowCfg, client)
	rs = append(rs, auth...)
	if auth[0].Status == StatusFail {
		return append(rs, skipped("import_table", "no OAuth token"))
	}
	table := checkImportTable(ctx, client)
	rs = append(rs, table, checkFieldLengths(ctx, client))
	if o.SendTest {
		if table.Status == StatusFail {
			return append(rs, skipped("send_test", "the import table is not usable"))
		}
		rs = append(rs, sendTest(ctx, o, client)...)
	}
	return rs
}

func skipped(check, why string) Result {
	return Result{Check: check, Status: StatusSkip, Detail: "skipped: " + why}
}

// checkNATS checks the connection, JetStream, the stream and the consumer.
func checkNATS(ctx context.Context, o Options) []Result {
	if o.JS == nil {
		detail := "not connected"
		if o.NATSErr != nil {
			detail = o.NATSErr.Error()
		}
		return []Result{{Check: "nats", Status: StatusFail, Detail: detail, Fix: fixNATS}, skipped("jetstream", "no NATS connection")}
	}
	rs := []Result{{Check: "nats", Status: StatusOK, Detail: "connected to " + o.JS.Conn().ConnectedUrlRedacted()}}
	info, err := o.JS.AccountInfo(ctx)
	if err != nil {
		return append(rs, Result{Check: "jetstream", Status: StatusFail, Detail: err.Error(), Fix: fixJetStream})
	}
	rs = append(rs, Result{Check: "jetstream", Status: StatusOK, Detail: fmt.Sprintf("enabled (%d streams, %d consumers)", info.Streams, info.Consumers)})

	n := o.Config.NATS
	s, err := o.JS.Stream(ctx, n.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return append(rs, Result{Check: "stream", Status: StatusWarn, Detail: fmt.Sprintf("stream %s does not exist yet", n.Stream), Fix: fixTopology})
	case err != nil:
		return append(rs, Result{Check: "stream", Status: StatusFail, Detail: err.Error(), Fix: fixNATS})
	}
	si := s.CachedInfo()
	rs = append(rs, Result{Check: "stream", Status: StatusOK, Detail: fmt.Sprintf("%s: %d messages, subjects %s, replicas %d",
		n.Stream, si.State.Msgs, strings.Join(si.Config.Subjects, ","), si.Config.Replicas)})
	c, err := s.Consumer(ctx, n.Consumer)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return append(rs, Result{Check: "consumer", Status: StatusWarn, Detail: fmt.Sprintf("consumer %s does not exist yet", n.Consumer), Fix: fixTopology})
	case err != nil:
		return append(rs, Result{Check: "consumer", Status: StatusFail, Detail: err.Error(), Fix: fixNATS})
	}
	ci := c.CachedInfo()
	return append(rs, Result{Check: "consumer", Status: StatusOK, Detail: fmt.Sprintf("%s: %d pending, %d awaiting ack, %d redelivered; filter %s",
		n.Consumer, ci.NumPending, ci.NumAckPending, ci.NumRedelivered, strings.Join(filterOf(ci.Config), ","))})
}

func filterOf(c jetstream.ConsumerConfig) []string {
	if len(c.FilterSubjects) > 0 {
		return c.FilterSubjects
	}
	if c.FilterSubject != "" {
		return []string{c.FilterSubject}
	}
	return []string{"(whole stream)"}
}

// checkURL checks that the instance answers over HTTP and is awake.
func checkURL(ctx context.Context, o Options, c servicenow.Config) Result {
	r := Result{Check: "servicenow_url"}
	if err := c.Validate(); err != nil {
		r.Status, r.Detail, r.Fix = StatusFail, err.Error(), "correct the servicenow section of the configuration"
		return r
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.InstanceURL, "/")+"/api/now/table/incident?sysparm_limit=1", nil)
	if err != nil {
		r.Status, r.Detail, r.Fix = StatusFail, err.Error(), "correct servicenow.instance_url"
		return r
	}
	resp, err := o.HTTPClient.Do(req)
	if err != nil {
		r.Status, r.Detail, r.Fix = StatusFail, "cannot reach "+c.InstanceURL+": "+networkReason(err),
			"check servicenow.instance_url (https://<instance>.service-now.com), DNS, proxies and firewalls"
		return r
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if strings.Contains(resp.Header.Get("Content-Type"), "html") && strings.Contains(strings.ToLower(string(body)), "hibernat") {
		r.Status, r.Detail, r.Fix = StatusFail, "the instance is hibernating (it answers with an HTML page)", fixHibernate
		return r
	}
	if resp.StatusCode >= 500 {
		r.Status, r.Detail, r.Fix = StatusFail, fmt.Sprintf("%s answers HTTP %d: the instance is down or failing", c.InstanceURL, resp.StatusCode), fixDown
		return r
	}
	r.Status, r.Detail = StatusOK, fmt.Sprintf("%s answers (HTTP %d)", c.InstanceURL, resp.StatusCode)
	return r
}

// networkReason shortens a network error to its cause, without the URL.
func networkReason(err error) string {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && ue.Unwrap() != nil {
		err = ue.Unwrap()
	}
	return err.Error()
}
