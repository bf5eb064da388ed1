package secrets_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/mac"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"

	"github.com/ionix/ionixsnow/secrets"
)

// initKeyset creates a keyset file in a fresh directory and returns it with its path.
func initKeyset(t *testing.T) (*secrets.Keyset, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keyset.json")
	k, err := secrets.Init(path)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return k, path
}

func assertMode0600(t *testing.T, path string) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("%s has mode %o, want 600", path, mode)
	}
}

// writeTinkKeyset writes a keyset of one fresh key from template, the way tinkey
// would, so Load can be shown keysets that are valid for Tink but not for us.
func writeTinkKeyset(t *testing.T, template *tinkpb.KeyTemplate) string {
	t.Helper()
	handle, err := keyset.NewHandle(template)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := insecurecleartextkeyset.Write(handle, keyset.NewJSONWriter(&buf)); err != nil {
		t.Fatal(err)
	}
	return writeFile(t, buf.Bytes())
}

func writeFile(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keyset.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// editKeysetJSON returns a keyset file's JSON after edit changed its decoded form.
func editKeysetJSON(t *testing.T, path string, edit func(map[string]any)) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	edited, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return edited
}

func TestInitWritesLoadableKeysetWithMode0600(t *testing.T) {
	k, path := initKeyset(t)
	assertMode0600(t, path)
	if ids := k.KeyIDs(); len(ids) != 1 || ids[0] != k.PrimaryKeyID() {
		t.Errorf("KeyIDs = %v, want just the primary %d", ids, k.PrimaryKeyID())
	}

	loaded, err := secrets.Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if loaded.PrimaryKeyID() != k.PrimaryKeyID() || !slices.Equal(loaded.KeyIDs(), k.KeyIDs()) {
		t.Errorf("loaded %v, want %v", loaded, k)
	}
	sealed, err := k.Seal([]byte("s3cret"), secrets.AssociatedData("acme", "ionix.token"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := loaded.Open(sealed, secrets.AssociatedData("acme", "ionix.token")); err != nil || string(got) != "s3cret" {
		t.Errorf("the loaded keyset opens what Init's sealed as %q, %v", got, err)
	}
}

func TestInitRefusesExistingFile(t *testing.T) {
	_, path := initKeyset(t)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := secrets.Init(path); !errors.Is(err, secrets.ErrKeysetExists) {
		t.Fatalf("Init over an existing keyset: %v, want ErrKeysetExists", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("Init changed the existing keyset file")
	}
}

func TestInitNeedsParentDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "keyset.json")
	if _, err := secrets.Init(path); err == nil || errors.Is(err, secrets.ErrKeysetExists) {
		t.Fatalf("Init in a missing directory: %v, want a plain error", err)
	}
}

func TestLoadMissingFileIsErrNoKeyset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.json")
	_, err := secrets.Load(path)
	if !errors.Is(err, secrets.ErrNoKeyset) {
		t.Fatalf("Load(missing) = %v, want ErrNoKeyset", err)
	}
	if errors.Is(err, secrets.ErrBadKeyset) {
		t.Errorf("Load(missing) is also ErrBadKeyset: %v", err)
	}
}

func TestLoadRefusesUnusableKeysets(t *testing.T) {
	_, valid := initKeyset(t)
	cases := []struct {
		name string
		path func(t *testing.T) string
	}{
		{"empty file", func(t *testing.T) string { return writeFile(t, nil) }},
		{"garbage", func(t *testing.T) string { return writeFile(t, []byte("\x00\xffnot json at all")) }},
		{"empty JSON object", func(t *testing.T) string { return writeFile(t, []byte("{}")) }},
		{"no keys", func(t *testing.T) string { return writeFile(t, []byte(`{"primaryKeyId": 1, "key": []}`)) }},
		{"JSON array", func(t *testing.T) string { return writeFile(t, []byte(`[]`)) }},
		{"truncated keyset", func(t *testing.T) string {
			data, err := os.ReadFile(valid)
			if err != nil {
				t.Fatal(err)
			}
			return writeFile(t, data[:len(data)/2])
		}},
		{"no primary key", func(t *testing.T) string {
			return writeFile(t, editKeysetJSON(t, valid, func(doc map[string]any) { delete(doc, "primaryKeyId") }))
		}},
		{"primary key not in keyset", func(t *testing.T) string {
			return writeFile(t, editKeysetJSON(t, valid, func(doc map[string]any) { doc["primaryKeyId"] = 7 }))
		}},
		{"primary key disabled", func(t *testing.T) string {
			return writeFile(t, editKeysetJSON(t, valid, func(doc map[string]any) {
				doc["key"].([]any)[0].(map[string]any)["status"] = "DISABLED"
			}))
		}},
		{"MAC keyset", func(t *testing.T) string { return writeTinkKeyset(t, mac.HMACSHA256Tag256KeyTemplate()) }},
		{"AES128-GCM keyset", func(t *testing.T) string { return writeTinkKeyset(t, aead.AES128GCMKeyTemplate()) }},
		{"AES256-GCM without Tink prefix", func(t *testing.T) string { return writeTinkKeyset(t, aead.AES256GCMNoPrefixKeyTemplate()) }},
		{"ChaCha20-Poly1305 keyset", func(t *testing.T) string { return writeTinkKeyset(t, aead.ChaCha20Poly1305KeyTemplate()) }},
		{"larger than 1 MiB", func(t *testing.T) string {
			data, err := os.ReadFile(valid)
			if err != nil {
				t.Fatal(err)
			}
			return writeFile(t, append(data, bytes.Repeat([]byte(" "), 1<<20)...))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path(t)
			k, err := secrets.Load(path)
			if !errors.Is(err, secrets.ErrBadKeyset) {
				t.Fatalf("Load = %v, %v; want ErrBadKeyset", k, err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoadAcceptsTinkeyStyleAES256GCMKeyset(t *testing.T) {
	// A compact keyset as tinkey writes it (not indented like ours) is fine.
	path := writeTinkKeyset(t, aead.AES256GCMKeyTemplate())
	if _, err := secrets.Load(path); err != nil {
		t.Fatalf("Load: %v", err)
	}
}

func TestRotateAddsPrimaryAndKeepsOldKeysOpening(t *testing.T) {
	old, path := initKeyset(t)
	ad := secrets.AssociatedData("acme", "servicenow.password")
	sealedByOld, err := old.Seal([]byte("hunter2"), ad)
	if err != nil {
		t.Fatal(err)
	}

	rotated, err := old.Rotate()
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if len(old.KeyIDs()) != 1 {
		t.Errorf("Rotate changed the original keyset: %v", old)
	}
	if err := rotated.Write(path); err != nil {
		t.Fatalf("Write: %v", err)
	}
	assertMode0600(t, path)
	loaded, err := secrets.Load(path)
	if err != nil {
		t.Fatalf("Load after Write: %v", err)
	}

	oldID, newID := old.PrimaryKeyID(), loaded.PrimaryKeyID()
	if newID == oldID {
		t.Fatalf("the primary is still %d after Rotate", oldID)
	}
	if ids := loaded.KeyIDs(); !slices.Equal(ids, []uint32{oldID, newID}) {
		t.Errorf("KeyIDs = %v, want [%d %d]", ids, oldID, newID)
	}

	if got, err := loaded.Open(sealedByOld, ad); err != nil || string(got) != "hunter2" {
		t.Errorf("the rotated keyset opens the old primary's ciphertext as %q, %v", got, err)
	}

	sealedByNew, err := loaded.Seal([]byte("hunter2"), ad)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := secrets.SealedKeyID(sealedByNew); err != nil || id != newID {
		t.Errorf("SealedKeyID(new seal) = %d, %v; want the new primary %d", id, err, newID)
	}
	if id, err := secrets.SealedKeyID(sealedByOld); err != nil || id != oldID {
		t.Errorf("SealedKeyID(old seal) = %d, %v; want the old primary %d", id, err, oldID)
	}
	_, err = old.Open(sealedByNew, ad)
	if !errors.Is(err, secrets.ErrUndecryptable) {
		t.Fatalf("a keyset holding only the old key opens a new seal: %v", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprint(newID)) {
		t.Errorf("error %q does not name the key %d it needs (a keyset mix-up shows itself)", err, newID)
	}
}

func TestWriteReplacesFileWithMode0600(t *testing.T) {
	k, path := initKeyset(t)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	rotated, err := k.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if err := rotated.Write(path); err != nil {
		t.Fatalf("Write: %v", err)
	}
	assertMode0600(t, path)
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("Write left %d files in the directory, want just the keyset", len(entries))
	}

	fresh := filepath.Join(t.TempDir(), "new.json")
	if err := rotated.Write(fresh); err != nil {
		t.Fatalf("Write to a new path: %v", err)
	}
	assertMode0600(t, fresh)
}

func TestWriteIntoMissingDirectoryFails(t *testing.T) {
	k, _ := initKeyset(t)
	if err := k.Write(filepath.Join(t.TempDir(), "missing", "keyset.json")); err == nil {
		t.Fatal("Write into a missing directory succeeded")
	}
}

func TestDisabledKeyLoadsButNoLongerOpens(t *testing.T) {
	old, path := initKeyset(t)
	ad := secrets.AssociatedData("acme", "servicenow.client_secret")
	sealedByOld, err := old.Seal([]byte("retire me"), ad)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := old.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if err := rotated.Write(path); err != nil {
		t.Fatal(err)
	}
	// Retire the old key the way tinkey would: its status in the file.
	retiredPath := writeFile(t, editKeysetJSON(t, path, func(doc map[string]any) {
		doc["key"].([]any)[0].(map[string]any)["status"] = "DISABLED"
	}))

	retired, err := secrets.Load(retiredPath)
	if err != nil {
		t.Fatalf("Load with a disabled old key: %v", err)
	}
	if ids := retired.KeyIDs(); len(ids) != 2 {
		t.Errorf("KeyIDs = %v, want both keys listed", ids)
	}
	if _, err := retired.Open(sealedByOld, ad); !errors.Is(err, secrets.ErrUndecryptable) {
		t.Errorf("a disabled key still opens: %v", err)
	}
}
