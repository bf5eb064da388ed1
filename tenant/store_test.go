package tenant_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ionix/ionixsnow/config"
	"github.com/ionix/ionixsnow/embedded/natstest"
	"github.com/ionix/ionixsnow/secrets"
	"github.com/ionix/ionixsnow/tenant"
	"github.com/ionix/ionixsnow/topology"
)

// Recognisable secrets: a test that finds one where it must not be fails.
const (
	clientSecret = "cs-Kq81-client-secret-acme"
	password     = "pw-Zt55-password-acme"
	refreshToken = "rt-Lm02-refresh-token-acme"
	ionixToken   = "it-Vb77-ionix-token-acme"
)

var allSecrets = []string{clientSecret, password, refreshToken, ionixToken}

type rig struct {
	kv       jetstream.KeyValue
	store    *tenant.Store
	keys     *secrets.Keyset
	keysPath string
	storeDir string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	srv := natstest.Start(t)
	js := natstest.Connect(t, srv.URL())
	kv, err := topology.EnsureIntegrations(context.Background(), js, topology.Options{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keyset.json")
	keys, err := secrets.Init(path)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{kv: kv, store: tenant.NewStore(kv, keys, secrets.AssociatedData), keys: keys, keysPath: path, storeDir: srv.StoreDir()}
}

func acme() tenant.Settings {
	c := config.Default()
	c.ServiceNow.InstanceURL = "https://acme.service-now.com"
	c.ServiceNow.ClientID, c.ServiceNow.ClientSecret = "acme-client", clientSecret
	c.ServiceNow.Username, c.ServiceNow.Password = "ionix", password
	c.Filter.Categories, c.Filter.UrgencyThreshold = []string{"Vulnerability", "PKI"}, 7
	c.Cap.MaxPerWindow = 200
	c.IONIX.Token = ionixToken // the account is the tenant's id when not given
	return tenant.FromConfig(c)
}

func TestPutThenGetAndView(t *testing.T) {
	t.Parallel()
	r, ctx := newRig(t), context.Background()
	res, err := r.store.Put(ctx, "acme", acme(), nil)
	if err != nil || !res.Created {
		t.Fatalf("Put = %+v, %v", res, err)
	}
	view, err := r.store.View(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if view.Active {
		t.Error("a new tenant is active; it must start inactive")
	}
	if view.ServiceNow.ClientSecret != "set" || view.ServiceNow.Password != "set" || view.IONIX.Token != "set" || view.ServiceNow.RefreshToken != "" {
		t.Errorf("View secrets = %q %q %q %q, want set set \"\" set", view.ServiceNow.ClientSecret, view.ServiceNow.Password, view.ServiceNow.RefreshToken, view.IONIX.Token)
	}
	if view.Cap.MaxPerWindow != 200 || view.Filter.UrgencyThreshold != 7 || view.UpdatedAt.IsZero() {
		t.Errorf("View = %v", view)
	}
	got, err := r.store.Get(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if got.ServiceNow.ClientSecret != clientSecret || got.ServiceNow.Password != password || got.IONIX.Token != ionixToken {
		t.Error("Get did not open the secrets")
	}
	e, err := r.kv.Get(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range allSecrets {
		if bytes.Contains(e.Value(), []byte(s)) {
			t.Errorf("the stored document holds a secret in plaintext: %s", e.Value())
		}
	}
	for _, shown := range []string{fmt.Sprint(got), fmt.Sprintf("%#v", got), fmt.Sprintf("%+v", got), mustJSON(t, got)} {
		for _, s := range allSecrets {
			if strings.Contains(shown, s) {
				t.Errorf("printing the settings shows a secret: %s", shown)
			}
		}
	}
}

func TestPutKeepsTheSecretsItDoesNotMention(t *testing.T) {
	t.Parallel()
	r, ctx := newRig(t), context.Background()
	if _, err := r.store.Put(ctx, "acme", acme(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.SetActive(ctx, "acme", true); err != nil {
		t.Fatal(err)
	}
	again := acme()
	again.ServiceNow.ClientSecret, again.ServiceNow.Password, again.IONIX.Token = "", "", ""
	again.Cap.MaxPerWindow = 300
	res, err := r.store.Put(ctx, "acme", again, nil)
	if err != nil || res.Created || strings.Join(res.Kept, " ") != "servicenow.client_secret servicenow.password ionix.token" {
		t.Fatalf("Put = %+v, %v", res, err)
	}
	got, err := r.store.Get(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if got.ServiceNow.ClientSecret != clientSecret || got.ServiceNow.Password != password || got.IONIX.Token != ionixToken {
		t.Error("the secrets a put did not mention were lost")
	}
	if got.Cap.MaxPerWindow != 300 || !got.Active {
		t.Errorf("after the second put: cap %d, active %v; want 300, still active", got.Cap.MaxPerWindow, got.Active)
	}

	t.Run("what get shows, put back, keeps them too", func(t *testing.T) {
		view, err := r.store.View(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.store.Put(ctx, "acme", view, nil); err != nil {
			t.Fatal(err)
		}
		if got, err := r.store.Get(ctx, "acme"); err != nil || got.ServiceNow.Password != password {
			t.Fatalf("after putting the view back: %v (password kept: %v)", err, got.ServiceNow.Password == password)
		}
	})
	t.Run("clear drops one", func(t *testing.T) {
		swap := acme()
		swap.ServiceNow.ClientSecret, swap.ServiceNow.Password, swap.IONIX.Token = "", "", ""
		swap.ServiceNow.Username, swap.ServiceNow.RefreshToken = "", refreshToken
		if _, err := r.store.Put(ctx, "acme", swap, []string{tenant.FieldPassword}); err != nil {
			t.Fatal(err)
		}
		got, err := r.store.Get(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if got.ServiceNow.Password != "" || got.ServiceNow.RefreshToken != refreshToken || got.ServiceNow.ClientSecret != clientSecret {
			t.Errorf("after clearing the password: password set %v, refresh token %v, client secret kept %v",
				got.ServiceNow.Password != "", got.ServiceNow.RefreshToken == refreshToken, got.ServiceNow.ClientSecret == clientSecret)
		}
	})
	t.Run("clear names a secret field", func(t *testing.T) {
		if _, err := r.store.Put(ctx, "acme", again, []string{"servicenow.instance_url"}); err == nil {
			t.Fatal("clearing a field that is not a secret was accepted")
		}
	})
}

func TestPutValidatesBeforeWriting(t *testing.T) {
	t.Parallel()
	r, ctx := newRig(t), context.Background()
	bad := acme()
	bad.ServiceNow.ClientSecret, bad.ServiceNow.InstanceURL, bad.Filter.UrgencyThreshold = "", "http://acme.service-now.com", 12
	_, err := r.store.Put(ctx, "acme", bad, nil)
	keys := strings.Join(config.AsProblems(err).Keys(), " ")
	if keys != "servicenow.instance_url servicenow.client_secret filter.urgency_threshold" {
		t.Fatalf("Put problems at %q, want every problem with its key:\n%v", keys, err)
	}
	if _, err := r.store.View(ctx, "acme"); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("after a refused put View = %v, want ErrNotFound", err)
	}
	for _, s := range allSecrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("the problems show a secret: %v", err)
		}
	}
}

func TestIONIXAccountIsTheTenants(t *testing.T) {
	t.Parallel()
	r, ctx := newRig(t), context.Background()
	for _, tc := range []struct {
		id, account, want string // want "": refused
	}{
		{"acme", "", "acme"},
		{"acme", "ACME", "ACME"},
		{"globex", "Acme", ""},
	} {
		s := acme()
		s.IONIX.Account = tc.account
		_, err := r.store.Put(ctx, tc.id, s, nil)
		if tc.want == "" {
			if keys := strings.Join(config.AsProblems(err).Keys(), " "); keys != "ionix.account" {
				t.Errorf("Put(%s) with account %q: %v; want a problem at ionix.account", tc.id, tc.account, err)
			}
			continue
		}
		view, verr := r.store.View(ctx, tc.id)
		if err != nil || verr != nil || view.IONIX.Account != tc.want {
			t.Errorf("Put(%s) with account %q: %v, %v; account %q, want %q", tc.id, tc.account, err, verr, view.IONIX.Account, tc.want)
		}
	}
}

// TestACorruptDocumentHidesNothing: a document that is not settings is listed with
// its error (the others still are), can be put over, and can be deleted; a reseal
// goes on past it.
func TestACorruptDocumentHidesNothing(t *testing.T) {
	t.Parallel()
	r, ctx := newRig(t), context.Background()
	if _, err := r.store.Put(ctx, "acme", acme(), nil); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"broken", "mangled"} {
		if _, err := r.kv.Put(ctx, id, []byte("{not json")); err != nil {
			t.Fatal(err)
		}
	}
	l, err := r.store.List(ctx)
	if err != nil || len(l) != 3 || l[0].ID != "acme" || l[0].Err != nil || !errors.Is(l[1].Err, tenant.ErrCorrupt) || !errors.Is(l[2].Err, tenant.ErrCorrupt) {
		t.Fatalf("List = %+v, %v", l, err)
	}
	rotated, err := r.keys.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	n, err := r.store.Reseal(ctx, rotated)
	if n != 1 || !errors.Is(err, tenant.ErrCorrupt) {
		t.Fatalf("Reseal = %d, %v; want acme resealed and the corrupt ones named", n, err)
	}
	if _, err := r.store.Put(ctx, "broken", acme(), nil); err != nil {
		t.Fatalf("Put over a corrupt document: %v", err)
	}
	if err := r.store.Delete(ctx, "mangled"); err != nil {
		t.Fatalf("Delete of a corrupt document: %v", err)
	}
	if l, err := r.store.List(ctx); err != nil || len(l) != 2 || l[1].ID != "broken" || l[1].Err != nil {
		t.Fatalf("List after the repair = %+v, %v", l, err)
	}
}

// TestSectionsPrintNoSecret: the parts of Settings print redacted too.
func TestSectionsPrintNoSecret(t *testing.T) {
	t.Parallel()
	s := acme()
	for _, v := range []any{s.ServiceNow, s.IONIX, &s.ServiceNow, s, &s} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		for _, shown := range []string{fmt.Sprint(v), fmt.Sprintf("%+v", v), fmt.Sprintf("%#v", v), string(b)} {
			for _, secret := range allSecrets {
				if strings.Contains(shown, secret) {
					t.Errorf("%T prints a secret: %s", v, shown)
				}
			}
		}
	}
}

func TestIDsTheStoreRefuses(t *testing.T) {
	t.Parallel()
	r, ctx := newRig(t), context.Background()
	if _, err := r.store.Put(ctx, tenant.Default, acme(), nil); !errors.Is(err, tenant.ErrDefaultTenant) {
		t.Errorf("Put(default) = %v, want ErrDefaultTenant", err)
	}
	for _, id := range []string{"Acme", "a.b", "", "x>"} {
		if _, err := r.store.Put(ctx, id, acme(), nil); !errors.Is(err, tenant.ErrInvalidID) {
			t.Errorf("Put(%q) = %v, want ErrInvalidID", id, err)
		}
		if _, err := r.store.View(ctx, id); !errors.Is(err, tenant.ErrInvalidID) {
			t.Errorf("View(%q) = %v, want ErrInvalidID", id, err)
		}
	}
}

func TestActivationAndDelete(t *testing.T) {
	t.Parallel()
	r, ctx := newRig(t), context.Background()
	if _, err := r.store.SetActive(ctx, "acme", true); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("activating a tenant that does not exist: %v", err)
	}
	if _, err := r.store.Put(ctx, "acme", acme(), nil); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		active, changed bool
	}{{true, true}, {true, false}, {false, true}, {false, false}} {
		changed, err := r.store.SetActive(ctx, "acme", step.active)
		view, verr := r.store.View(ctx, "acme")
		if err != nil || verr != nil || changed != step.changed || view.Active != step.active {
			t.Fatalf("SetActive(%v) = %v, %v; active %v (%v)", step.active, changed, err, view.Active, verr)
		}
	}
	if err := r.store.Delete(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.View(ctx, "acme"); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("View after Delete = %v", err)
	}
	if err := r.store.Delete(ctx, "acme"); !errors.Is(err, tenant.ErrNotFound) {
		t.Fatalf("second Delete = %v", err)
	}
}

func TestListIsSortedAndShowsNoSecret(t *testing.T) {
	t.Parallel()
	r, ctx := newRig(t), context.Background()
	if l, err := r.store.List(ctx); err != nil || len(l) != 0 {
		t.Fatalf("List of an empty bucket = %v, %v", l, err)
	}
	for _, id := range []string{"zeta", "acme", "m-corp"} {
		if _, err := r.store.Put(ctx, id, acme(), nil); err != nil {
			t.Fatal(err)
		}
	}
	l, err := r.store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range l {
		ids = append(ids, e.ID)
		if e.Settings.ServiceNow.ClientSecret != "set" {
			t.Errorf("%s: client_secret %q in a listing", e.ID, e.Settings.ServiceNow.ClientSecret)
		}
	}
	if strings.Join(ids, " ") != "acme m-corp zeta" {
		t.Fatalf("List = %v", ids)
	}
}

// TestSealedSecretsAreBoundToTheirTenant: a document copied to another tenant's key
// (or a ciphertext moved to another field) does not open.
func TestSealedSecretsAreBoundToTheirTenant(t *testing.T) {
	t.Parallel()
	r, ctx := newRig(t), context.Background()
	if _, err := r.store.Put(ctx, "acme", acme(), nil); err != nil {
		t.Fatal(err)
	}
	e, err := r.kv.Get(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.kv.Put(ctx, "evil", e.Value()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Get(ctx, "evil"); !errors.Is(err, secrets.ErrUndecryptable) {
		t.Fatalf("Get of a document copied to another tenant = %v, want ErrUndecryptable", err)
	}
	// The password's ciphertext put where the client secret belongs.
	swapped := bytes.Replace(e.Value(), []byte(`"client_secret":"`), []byte(`"client_secret_was":"`), 1)
	swapped = bytes.Replace(swapped, []byte(`"password":"`), []byte(`"client_secret":"`), 1)
	if _, err := r.kv.Put(ctx, "acme", swapped); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Get(ctx, "acme"); !errors.Is(err, secrets.ErrUndecryptable) {
		t.Fatalf("Get with a ciphertext moved to another field = %v, want ErrUndecryptable", err)
	}
}

func TestResealAfterRotation(t *testing.T) {
	t.Parallel()
	r, ctx := newRig(t), context.Background()
	for _, id := range []string{"acme", "globex"} {
		if _, err := r.store.Put(ctx, id, acme(), nil); err != nil {
			t.Fatal(err)
		}
	}
	old := r.keys
	rotated, err := old.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	n, err := r.store.Reseal(ctx, rotated)
	if err != nil || n != 2 {
		t.Fatalf("Reseal = %d, %v; want 2 tenants", n, err)
	}
	fresh := tenant.NewStore(r.kv, rotated, secrets.AssociatedData)
	for _, id := range []string{"acme", "globex"} {
		got, err := fresh.Get(ctx, id)
		if err != nil || got.ServiceNow.ClientSecret != clientSecret {
			t.Fatalf("Get(%s) after the reseal: %v", id, err)
		}
		// Sealed with the new primary: the keyset before the rotation cannot open it.
		stale := tenant.NewStore(r.kv, old, secrets.AssociatedData)
		if _, err := stale.Get(ctx, id); !errors.Is(err, secrets.ErrUndecryptable) {
			t.Fatalf("the old keyset opened %s's secrets after the reseal: %v", id, err)
		}
	}
}

func TestConcurrentPutsAllLand(t *testing.T) {
	t.Parallel()
	r, ctx := newRig(t), context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			s := acme()
			s.Cap.MaxPerWindow = 100 + i
			_, err := r.store.Put(ctx, "acme", s, nil)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	view, err := r.store.View(ctx, "acme")
	if err != nil || view.Cap.MaxPerWindow < 100 || view.Cap.MaxPerWindow > 107 {
		t.Fatalf("after 8 concurrent puts: %v, %v", view.Cap.MaxPerWindow, err)
	}
}

// TestNoSecretInTheServersFiles reads every file of the NATS store directory after the
// tenant's settings were put, replaced and resealed: no secret is there in plaintext.
func TestNoSecretInTheServersFiles(t *testing.T) {
	t.Parallel()
	r, ctx := newRig(t), context.Background()
	if _, err := r.store.Put(ctx, "acme", acme(), nil); err != nil {
		t.Fatal(err)
	}
	with := acme()
	with.ServiceNow.Username, with.ServiceNow.Password, with.ServiceNow.RefreshToken = "", "", refreshToken
	if _, err := r.store.Put(ctx, "acme", with, []string{tenant.FieldPassword}); err != nil {
		t.Fatal(err)
	}
	rotated, err := r.keys.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Reseal(ctx, rotated); err != nil {
		t.Fatal(err)
	}
	files, scanned := 0, int64(0)
	err = filepath.WalkDir(r.storeDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		scanned += int64(len(b))
		for _, s := range allSecrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds a secret in plaintext", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The check must have seen the bucket's data: its sealed values are there.
	e, err := r.kv.Get(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if !storeHolds(t, r.storeDir, []byte("acme-client")) || files == 0 {
		t.Fatalf("the store directory (%d files, %d bytes) does not hold the tenant's settings; the scan proves nothing (value %d bytes)", files, scanned, len(e.Value()))
	}
}

func storeHolds(t *testing.T, dir string, needle []byte) bool {
	t.Helper()
	found := false
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, needle) {
				found = true
			}
		}
		return nil
	})
	return found
}

func mustJSON(t *testing.T, s tenant.Settings) string {
	t.Helper()
	b, err := s.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
