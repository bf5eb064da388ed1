// Package secrets holds the deployment's key-encryption keyset and encrypts tenant
// secrets with it (SPEC §9): client_secret, password, refresh_token and ionix.token are
// stored only as the strings Seal returns, each bound by its associated data
// (AssociatedData) to one tenant's one field, so a ciphertext copied to another tenant
// or another field does not open.
//
// Seal is envelope encryption with Tink's AEAD (github.com/tink-crypto/tink-go/v2):
// every ciphertext gets a fresh AES256-GCM data key, which the keyset's primary key
// wraps (aead.NewKMSEnvelopeAEAD2 with the keyset's own AEAD standing in as the
// key-encryption key). Rotate adds a new primary key; the older keys stay in the keyset
// and still open what they sealed, while Seal only ever uses the primary.
//
// The keyset file (secrets.keyset_file) is Tink's cleartext JSON keyset: one or more
// AES256-GCM keys with Tink's output prefix. It is the root secret of the deployment —
// whoever reads it can open every tenant's secrets — so Init and Write create it with
// mode 0600, and in production it is mounted from a Kubernetes Secret. Handling it with
// Tink's insecurecleartextkeyset package is deliberate: the file itself is the
// key-encryption key, because no KMS is reachable from this deployment to wrap it. A
// KMS-backed key-encryption key (a tink.AEAD from a KMS client in place of the keyset's
// own) could replace it later; the envelope format stays, and re-sealing every tenant
// (as keys rotate does) moves the existing ciphertexts over.
//
// Nothing this package returns — errors, String, GoString — contains key material or a
// plaintext: errors name the keyset file and what is wrong with it, never its content.
package secrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

var (
	// ErrNoKeyset: the keyset file does not exist.
	ErrNoKeyset = errors.New("secrets: no keyset file")
	// ErrKeysetExists: Init refuses to overwrite an existing keyset file.
	ErrKeysetExists = errors.New("secrets: keyset file already exists")
	// ErrBadKeyset: the file is not a keyset this package can use (not a Tink JSON
	// keyset, no enabled primary key, a key that is not AES256-GCM, too large).
	ErrBadKeyset = errors.New("secrets: not a usable keyset")
	// ErrUndecryptable: Open failed — the string is not one Seal returned, it was
	// sealed for another tenant or field (other associated data), it was tampered
	// with, or its data key was wrapped by a key that is not (or no longer) enabled in
	// this keyset.
	ErrUndecryptable = errors.New("secrets: cannot decrypt")
)

// maxKeysetFileSize caps what Load reads: a keyset of AES256-GCM keys is about 200
// bytes per key, so 1 MiB is thousands of rotations.
const maxKeysetFileSize = 1 << 20

// Keyset is the deployment's key-encryption keyset with the primitives built from it.
// It never changes after construction (Rotate returns a new one), so it is safe for
// concurrent use. Make one with Init, Load or Rotate; the zero Keyset seals nothing.
type Keyset struct {
	handle   *keyset.Handle
	envelope tink.AEAD // fresh AES256-GCM data key per ciphertext, wrapped by the keyset's AEAD
	primary  uint32
	ids      []uint32        // every key in the keyset, in its order (oldest first when made by Init and Rotate)
	enabled  map[uint32]bool // the keys that can unwrap data keys
}

// Init creates a new keyset of one AES256-GCM key, the primary, and writes it to path
// with mode 0600. It creates the file exclusively: an existing file is never
// overwritten (ErrKeysetExists). The parent directory must exist.
func Init(path string) (*Keyset, error) {
	handle, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("secrets: generate keyset: %w", err)
	}
	k, err := newKeyset(handle)
	if err != nil {
		return nil, err
	}
	data, err := k.marshal()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w: %w", ErrKeysetExists, err)
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: create keyset file: %w", err)
	}
	if err := writeSyncClose(f, data); err != nil {
		_ = os.Remove(path) // a half-written keyset must not pass for one
		return nil, fmt.Errorf("secrets: write keyset file %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("secrets: write keyset file %s: %w", path, err)
	}
	return k, nil
}

// Load reads the keyset file at path: ErrNoKeyset if it does not exist, ErrBadKeyset
// if it is not a keyset this package can use (the error names the path and the
// problem, never the file's content).
func Load(path string) (*Keyset, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %w", ErrNoKeyset, err)
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: read keyset file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeysetFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("secrets: read keyset file %s: %w", path, err)
	}
	if len(data) > maxKeysetFileSize {
		return nil, badKeyset(path, "larger than 1 MiB")
	}
	// Tink's and protojson's errors may quote the input they choke on, and the input
	// is key material: the reasons below are this package's own words.
	handle, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(bytes.NewReader(data)))
	if err != nil {
		return nil, badKeyset(path, "not a Tink JSON keyset with an enabled primary key")
	}
	if reason := unusable(handle); reason != "" {
		return nil, badKeyset(path, reason)
	}
	k, err := newKeyset(handle)
	if err != nil {
		return nil, badKeyset(path, "its keys do not make an AEAD")
	}
	return k, nil
}

func badKeyset(path, reason string) error {
	return fmt.Errorf("%w: %s: %s", ErrBadKeyset, path, reason)
}

// unusable says why handle is not a keyset of AES256-GCM keys with Tink's output
// prefix (the prefix carries the key id Open and SealedKeyID rely on), or "".
func unusable(handle *keyset.Handle) string {
	for i := range handle.Len() {
		entry, err := handle.Entry(i)
		if err != nil {
			return "unreadable key entry"
		}
		if entry.KeyStatus() != keyset.Enabled && entry.KeyStatus() != keyset.Disabled {
			return fmt.Sprintf("key %d is %s", entry.KeyID(), entry.KeyStatus())
		}
		key, ok := entry.Key().(*aesgcm.Key)
		if !ok {
			return fmt.Sprintf("key %d is not an AES-GCM key", entry.KeyID())
		}
		params, ok := key.Parameters().(*aesgcm.Parameters)
		if !ok || params.KeySizeInBytes() != 32 || params.Variant() != aesgcm.VariantTink {
			return fmt.Sprintf("key %d is not AES256-GCM with Tink's output prefix", entry.KeyID())
		}
	}
	return ""
}

func newKeyset(handle *keyset.Handle) (*Keyset, error) {
	kek, err := aead.New(handle)
	if err != nil {
		return nil, fmt.Errorf("secrets: keyset AEAD: %w", err)
	}
	primary, err := handle.Primary()
	if err != nil {
		return nil, fmt.Errorf("secrets: keyset primary: %w", err)
	}
	k := &Keyset{
		handle:   handle,
		envelope: aead.NewKMSEnvelopeAEAD2(aead.AES256GCMKeyTemplate(), kek),
		primary:  primary.KeyID(),
		enabled:  make(map[uint32]bool, handle.Len()),
	}
	for i := range handle.Len() {
		entry, err := handle.Entry(i)
		if err != nil {
			return nil, fmt.Errorf("secrets: keyset entry %d: %w", i, err)
		}
		k.ids = append(k.ids, entry.KeyID())
		if entry.KeyStatus() == keyset.Enabled {
			k.enabled[entry.KeyID()] = true
		}
	}
	return k, nil
}

// Rotate returns a copy of k with a new AES256-GCM key added and made primary. The
// older keys stay enabled, so what they sealed still opens; Seal uses only the new
// primary. k itself is unchanged; Write the copy to keep it.
func (k *Keyset) Rotate() (*Keyset, error) {
	if k == nil || k.handle == nil {
		return nil, errNotLoaded
	}
	manager := keyset.NewManagerFromHandle(k.handle)
	id, err := manager.Add(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("secrets: rotate: add key: %w", err)
	}
	if err := manager.SetPrimary(id); err != nil {
		return nil, fmt.Errorf("secrets: rotate: make key %d primary: %w", id, err)
	}
	handle, err := manager.Handle()
	if err != nil {
		return nil, fmt.Errorf("secrets: rotate: %w", err)
	}
	return newKeyset(handle)
}

// Write replaces the keyset file at path atomically: a temporary file in the same
// directory with mode 0600, written and synced, then renamed over path.
func (k *Keyset) Write(path string) error {
	if k == nil || k.handle == nil {
		return errNotLoaded
	}
	data, err := k.marshal()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return fmt.Errorf("secrets: write keyset file: %w", err)
	}
	tmp := f.Name()
	if err := writeSyncClose(f, data); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("secrets: write keyset file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("secrets: write keyset file: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("secrets: write keyset file %s: %w", path, err)
	}
	return nil
}

// marshal is the keyset file's content: Tink's JSON keyset, indented.
func (k *Keyset) marshal() ([]byte, error) {
	var compact bytes.Buffer
	if err := insecurecleartextkeyset.Write(k.handle, keyset.NewJSONWriter(&compact)); err != nil {
		return nil, fmt.Errorf("secrets: encode keyset: %w", err)
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, compact.Bytes(), "", "  "); err != nil {
		return nil, errors.New("secrets: encode keyset: Tink wrote invalid JSON")
	}
	indented.WriteByte('\n')
	return indented.Bytes(), nil
}

func writeSyncClose(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	return err
}

// syncDir makes a file created or renamed in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if closeErr := d.Close(); err == nil {
		err = closeErr
	}
	return err
}

// PrimaryKeyID is the id of the key Seal wraps data keys with.
func (k *Keyset) PrimaryKeyID() uint32 {
	if k == nil {
		return 0
	}
	return k.primary
}

// KeyIDs are the ids of every key in the keyset, the primary included, in the
// keyset's order (oldest first when made by Init and Rotate).
func (k *Keyset) KeyIDs() []uint32 {
	if k == nil {
		return nil
	}
	return append([]uint32(nil), k.ids...)
}

// String describes the keyset without key material, e.g.
// "secrets.Keyset{keys: 2, primary: 123}".
func (k Keyset) String() string {
	return fmt.Sprintf("secrets.Keyset{keys: %d, primary: %d}", len(k.ids), k.primary)
}

// GoString is String: %#v must not print key material either.
func (k Keyset) GoString() string { return k.String() }

var errNotLoaded = errors.New("secrets: keyset not loaded (use Init, Load or Rotate)")
