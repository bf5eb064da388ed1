package secrets

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
)

// SealedPrefix starts every string Seal returns; it names the format (Tink's KMS
// envelope AEAD, base64 without padding), so a later format can be told apart.
const SealedPrefix = "tink1:"

// associatedDataContext starts every AssociatedData, so that a ciphertext made for a
// tenant secret cannot be passed off for anything else sealed with this keyset.
const associatedDataContext = "ionixsnow tenant secret v1\x00"

// AssociatedData binds a ciphertext to one tenant's one field (such as
// "servicenow.client_secret"): a fixed context, then the tenant id and the field name,
// each preceded by its length (4 bytes, big-endian), so no two (tenant, field) pairs
// give the same bytes.
func AssociatedData(tenant, field string) []byte {
	b := make([]byte, 0, len(associatedDataContext)+4+len(tenant)+4+len(field))
	b = append(b, associatedDataContext...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(tenant)))
	b = append(b, tenant...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(field)))
	b = append(b, field...)
	return b
}

// Seal encrypts plaintext with a fresh AES256-GCM data key, bound to associatedData
// (use AssociatedData), and wraps the data key with the keyset's primary key. The
// result is printable: SealedPrefix and the envelope in base64 without padding.
// Sealing the same plaintext twice gives different strings.
func (k *Keyset) Seal(plaintext, associatedData []byte) (string, error) {
	if k == nil || k.envelope == nil {
		return "", errNotLoaded
	}
	envelope, err := k.envelope.Encrypt(plaintext, associatedData)
	if err != nil {
		return "", fmt.Errorf("secrets: seal: %w", err)
	}
	return SealedPrefix + base64.RawStdEncoding.EncodeToString(envelope), nil
}

// Open decrypts what Seal returned for the same associatedData. Every failure is
// ErrUndecryptable (wrapped, with a reason that never quotes the input).
func (k *Keyset) Open(sealed string, associatedData []byte) ([]byte, error) {
	if k == nil || k.envelope == nil {
		return nil, fmt.Errorf("%w: %w", ErrUndecryptable, errNotLoaded)
	}
	envelope, keyID, err := parseSealed(sealed)
	if err != nil {
		return nil, err
	}
	if !k.enabled[keyID] {
		return nil, fmt.Errorf("%w: sealed with key %d, which is not an enabled key of this keyset", ErrUndecryptable, keyID)
	}
	plaintext, err := k.envelope.Decrypt(envelope, associatedData)
	if err != nil {
		// Tink does not say which check failed, and its reasons are not needed here.
		return nil, fmt.Errorf("%w: authentication failed (sealed for another tenant or field, or altered)", ErrUndecryptable)
	}
	return plaintext, nil
}

// SealedKeyID is the id of the keyset key that wrapped sealed's data key, read from
// its header without decrypting anything: it tells which ciphertexts still depend on
// an older key (ErrUndecryptable if sealed is not shaped like Seal's output). It
// authenticates nothing; only Open does.
func SealedKeyID(sealed string) (uint32, error) {
	_, keyID, err := parseSealed(sealed)
	return keyID, err
}

// Envelope layout (Tink's KMS envelope AEAD): the wrapped data key's length (4 bytes,
// big-endian), the wrapped data key, then the payload. The wrapped data key is the
// keyset's AEAD ciphertext, which starts with Tink's output prefix: 0x01 and the key
// id (4 bytes, big-endian).
const (
	wrappedKeyLengthSize = 4
	tinkPrefixSize       = 5
	tinkPrefixStartByte  = 0x01
	maxWrappedKeySize    = 4096 // Tink's own limit
)

// parseSealed decodes sealed and reads the id of the key that wrapped its data key.
func parseSealed(sealed string) (envelope []byte, keyID uint32, err error) {
	encoded, ok := strings.CutPrefix(sealed, SealedPrefix)
	if !ok {
		return nil, 0, fmt.Errorf("%w: not a sealed secret (no %q prefix)", ErrUndecryptable, SealedPrefix)
	}
	envelope, err = base64.RawStdEncoding.Strict().DecodeString(encoded)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: not valid base64", ErrUndecryptable)
	}
	if len(envelope) < wrappedKeyLengthSize+tinkPrefixSize {
		return nil, 0, fmt.Errorf("%w: too short", ErrUndecryptable)
	}
	wrappedKeySize := binary.BigEndian.Uint32(envelope)
	rest := envelope[wrappedKeyLengthSize:]
	if wrappedKeySize < tinkPrefixSize || wrappedKeySize > maxWrappedKeySize || int(wrappedKeySize) > len(rest) {
		return nil, 0, fmt.Errorf("%w: malformed envelope", ErrUndecryptable)
	}
	if rest[0] != tinkPrefixStartByte {
		return nil, 0, fmt.Errorf("%w: data key not wrapped by a Tink-prefixed key", ErrUndecryptable)
	}
	return envelope, binary.BigEndian.Uint32(rest[1:tinkPrefixSize]), nil
}
