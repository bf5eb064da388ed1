package tenant

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Sentinel errors of the store.
var (
	// ErrNotFound: no tenant with that id in the bucket.
	ErrNotFound = errors.New("no such tenant")
	// ErrNoKeys: the operation reads or writes a secret and the store has no keyset
	// (secrets.keyset_file is not set).
	ErrNoKeys = errors.New("tenant secrets need a keyset: set secrets.keyset_file (or IONIXSNOW_SECRETS_KEYSET_FILE); create one with `ionixsnow keys init --out FILE`")
	// ErrDefaultTenant: the tenant "default" is the config file's, never the bucket's.
	ErrDefaultTenant = errors.New(`the tenant "default" is described by the config file (servicenow.instance_url), not stored in the bucket; name the tenant by its IONIX account`)
	// ErrCorrupt: a stored document that is not readable as settings.
	ErrCorrupt = errors.New("unreadable tenant settings")
)

// Keys seals and opens secrets, binding each to its associated data (the tenant and
// the field). *secrets.Keyset implements it.
type Keys interface {
	Seal(plaintext, associatedData []byte) (string, error)
	Open(sealed string, associatedData []byte) ([]byte, error)
}

// AssociatedData binds a sealed secret to one tenant's one field: a ciphertext copied
// to another tenant or field does not open. secrets.AssociatedData has this signature.
type AssociatedData func(tenant, field string) []byte

// Store is the tenants' settings in the ionix_integrations bucket: one key per tenant
// id, one JSON document per key, secrets sealed. Every write is a compare-and-swap.
type Store struct {
	kv   jetstream.KeyValue
	keys Keys
	ad   AssociatedData
	now  func() time.Time
}

// NewStore returns the store over the bucket. keys may be nil: then View, List,
// SetActive and Delete work, and what reads or writes a secret fails with ErrNoKeys.
func NewStore(kv jetstream.KeyValue, keys Keys, ad AssociatedData) *Store {
	return &Store{kv: kv, keys: keys, ad: ad, now: time.Now}
}

// maxAttempts bounds the compare-and-swap loops against concurrent writers.
const maxAttempts = 8

// PutResult tells what Put did.
type PutResult struct {
	Created bool     // the tenant was new (and starts inactive)
	Kept    []string // secret fields the input left empty, kept from the stored settings
}

// Put creates or replaces the tenant's settings with in. A new tenant starts inactive;
// an existing one keeps its activation. A secret in left empty (or "set", as View
// shows it) keeps the stored one unless its field is in clear, so a put need not
// repeat the secrets. An empty ionix.account becomes the tenant's id. The result is
// validated (Settings.ValidateFor: every problem with its key, as config.Problems)
// before anything is written. A stored document that cannot be read is replaced.
func (s *Store) Put(ctx context.Context, id string, in Settings, clear []string) (PutResult, error) {
	if err := checkWritable(id); err != nil {
		return PutResult{}, err
	}
	for _, f := range clear {
		if !slices.Contains(SecretFields, f) {
			return PutResult{}, fmt.Errorf("cannot clear %q: not a secret field (%v)", f, SecretFields)
		}
	}
	in.Filter.Categories = slices.Clone(in.Filter.Categories)
	if in.IONIX.Account == "" {
		in.IONIX.Account = id
	}
	for range maxAttempts {
		prev, rev, err := s.load(ctx, id)
		exists := err == nil || errors.Is(err, ErrCorrupt)
		if err != nil && !exists && !errors.Is(err, ErrNotFound) {
			return PutResult{}, err
		}
		doc, check, kept := in, in, []string(nil)
		for _, f := range SecretFields {
			p, old := doc.secret(f), prev.secret(f)
			if *p == Shown {
				*p = "" // what View shows: read back and put again, the secret is kept
			}
			switch {
			case *p == "" && *old != "" && !slices.Contains(clear, f):
				*p = *old // still sealed for this tenant and field
				// The ciphertext stands in for the secret in the checks: present, and
				// never a word a problem's message could hold.
				*check.secret(f) = *old
				kept = append(kept, f)
			case *p == "":
				*check.secret(f) = ""
			default:
				if s.keys == nil {
					return PutResult{}, ErrNoKeys
				}
				sealed, err := s.keys.Seal([]byte(*p), s.ad(id, f))
				if err != nil {
					return PutResult{}, fmt.Errorf("sealing %s of tenant %s: %w", f, id, err)
				}
				*p = sealed
			}
		}
		if err := check.ValidateFor(id); err != nil {
			return PutResult{}, err
		}
		doc.Active = exists && prev.Active
		doc.UpdatedAt = s.now().UTC()
		if err := s.write(ctx, id, doc, rev, exists); err != nil {
			if isConflict(err) {
				continue
			}
			return PutResult{}, err
		}
		return PutResult{Created: !exists, Kept: kept}, nil
	}
	return PutResult{}, fmt.Errorf("put tenant %s: %d concurrent writers in a row", id, maxAttempts)
}

// Get returns the tenant's settings with their secrets opened: what consume runs with.
func (s *Store) Get(ctx context.Context, id string) (Settings, error) {
	sealed, _, err := s.load(ctx, id)
	if err != nil {
		return Settings{}, err
	}
	return s.open(id, sealed)
}

// View returns the tenant's settings with every secret that is set shown as "set";
// it needs no keyset.
func (s *Store) View(ctx context.Context, id string) (Settings, error) {
	sealed, _, err := s.load(ctx, id)
	if err != nil {
		return Settings{}, err
	}
	return sealed.Redacted(), nil
}

// Entry is one tenant in a listing.
type Entry struct {
	ID       string
	Settings Settings // secrets shown as "set"
	// Err is why the tenant's settings cannot be read (ErrCorrupt); Settings is
	// then empty.
	Err error
}

// List returns every tenant, by id, with its settings as View shows them. A tenant
// whose settings cannot be read is listed with its error: one bad document hides no
// other tenant.
func (s *Store) List(ctx context.Context) ([]Entry, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	defer func() { _ = lister.Stop() }() // a lister that ran to its end is stopped already
	var ids []string
	for k := range lister.Keys() {
		ids = append(ids, k)
	}
	// The lister ends its channel when ctx ends, as when it has listed every key.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	slices.Sort(ids)
	out := make([]Entry, 0, len(ids))
	for _, id := range ids {
		st, err := s.View(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			continue // deleted meanwhile
		case errors.Is(err, ErrCorrupt), errors.Is(err, ErrInvalidID):
			out = append(out, Entry{ID: id, Err: err})
			continue
		case err != nil:
			return nil, err
		}
		out = append(out, Entry{ID: id, Settings: st})
	}
	return out, nil
}

// SetActive activates or deactivates the tenant and reports whether that changed it.
func (s *Store) SetActive(ctx context.Context, id string, active bool) (changed bool, err error) {
	if id == Default {
		return false, ErrDefaultTenant
	}
	for range maxAttempts {
		st, rev, err := s.load(ctx, id)
		if err != nil {
			return false, err
		}
		if st.Active == active {
			return false, nil
		}
		st.Active, st.UpdatedAt = active, s.now().UTC()
		if err := s.write(ctx, id, st, rev, true); err != nil {
			if isConflict(err) {
				continue
			}
			return false, err
		}
		return true, nil
	}
	return false, fmt.Errorf("activate tenant %s: %d concurrent writers in a row", id, maxAttempts)
}

// Delete removes the tenant's settings (ErrNotFound when there are none), readable
// or not. Its stream messages, ledger entries and dead letters stay.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if id == Default {
		return ErrDefaultTenant
	}
	if _, err := s.kv.Get(ctx, id); errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	} else if err != nil {
		return fmt.Errorf("read tenant %s: %w", id, err)
	}
	if err := s.kv.Delete(ctx, id); err != nil {
		return fmt.Errorf("delete tenant %s: %w", id, err)
	}
	return nil
}

// Reseal opens every tenant's secrets with the store's keys and seals them again
// with keys (after a rotation: its new primary key). It returns how many tenants it
// rewrote; a tenant it cannot read or open is left as it is, named in the error, and
// the others are still resealed. The store keeps its own keys: use a store over keys
// from then on.
func (s *Store) Reseal(ctx context.Context, keys Keys) (int, error) {
	if s.keys == nil || keys == nil {
		return 0, ErrNoKeys
	}
	entries, err := s.List(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var failed []error
	for _, e := range entries {
		if e.Err != nil {
			failed = append(failed, e.Err)
			continue
		}
		ok, err := s.reseal(ctx, e.ID, keys)
		if err != nil {
			failed = append(failed, err)
		}
		if ok {
			n++
		}
	}
	return n, errors.Join(failed...)
}

// reseal rewrites one tenant's secrets with keys; ok is false when it was deleted
// meanwhile or could not be rewritten.
func (s *Store) reseal(ctx context.Context, id string, keys Keys) (ok bool, err error) {
	for range maxAttempts {
		st, rev, err := s.load(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		for _, f := range SecretFields {
			p := st.secret(f)
			if *p == "" {
				continue
			}
			plain, err := s.keys.Open(*p, s.ad(id, f))
			if err != nil {
				return false, fmt.Errorf("opening %s of tenant %s: %w", f, id, err)
			}
			if *p, err = keys.Seal(plain, s.ad(id, f)); err != nil {
				return false, fmt.Errorf("sealing %s of tenant %s: %w", f, id, err)
			}
		}
		if err := s.write(ctx, id, st, rev, true); err != nil {
			if isConflict(err) {
				continue
			}
			return false, err
		}
		return true, nil
	}
	return false, fmt.Errorf("reseal tenant %s: %d concurrent writers in a row", id, maxAttempts)
}

// load reads the tenant's stored settings (secrets sealed) and their revision. A
// document that is not readable is ErrCorrupt, with its revision.
func (s *Store) load(ctx context.Context, id string) (Settings, uint64, error) {
	if err := checkID(id); err != nil {
		return Settings{}, 0, err
	}
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		if id == Default {
			return Settings{}, 0, ErrDefaultTenant
		}
		return Settings{}, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Settings{}, 0, fmt.Errorf("read tenant %s: %w", id, err)
	}
	var doc document
	if err := json.Unmarshal(e.Value(), &doc); err != nil {
		return Settings{}, e.Revision(), fmt.Errorf("%w %s (put its settings again, or delete it): %v", ErrCorrupt, id, err)
	}
	return doc.settings(), e.Revision(), nil
}

// write stores the settings (secrets sealed) with compare-and-swap: created when they
// did not exist, else over rev.
func (s *Store) write(ctx context.Context, id string, st Settings, rev uint64, exists bool) error {
	b, err := json.Marshal(toDocument(st))
	if err != nil {
		return fmt.Errorf("encode tenant %s: %w", id, err)
	}
	if exists {
		_, err = s.kv.Update(ctx, id, b, rev)
	} else {
		_, err = s.kv.Create(ctx, id, b)
	}
	if err != nil {
		return fmt.Errorf("write tenant %s: %w", id, err)
	}
	return nil
}

// open returns the settings with their secrets opened.
func (s *Store) open(id string, st Settings) (Settings, error) {
	for _, f := range SecretFields {
		p := st.secret(f)
		if *p == "" {
			continue
		}
		if s.keys == nil {
			return Settings{}, ErrNoKeys
		}
		plain, err := s.keys.Open(*p, s.ad(id, f))
		if err != nil {
			return Settings{}, fmt.Errorf("opening %s of tenant %s: %w", f, id, err)
		}
		*p = string(plain)
	}
	return st, nil
}

// checkID refuses an id that is not in its parsed form (see ParseID).
func checkID(id string) error {
	if parsed, err := ParseID(id); err != nil || parsed != id {
		return fmt.Errorf("%w %q: must be %s", ErrInvalidID, shorten(id), IDRule)
	}
	return nil
}

func checkWritable(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if id == Default {
		return ErrDefaultTenant
	}
	return nil
}

func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}
