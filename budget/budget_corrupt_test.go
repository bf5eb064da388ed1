package budget

import (
	"encoding/binary"
	"errors"
	"testing"
)

// TestCorruptCountIsRefused: a count near 2^64 in an entry, which once wrapped to 0
// or 1 when decoded, is refused as corrupt (version 1 and 2).
func TestCorruptCountIsRefused(t *testing.T) {
	for _, c := range []uint64{1<<64 - 1, 1<<64 - 2} {
		b := []byte{ledgerVersion}
		b = binary.AppendUvarint(b, 10)   // slice length
		b = binary.AppendUvarint(b, 0)    // folds
		b = binary.AppendUvarint(b, 1000) // oldest slice
		b = binary.AppendUvarint(b, 0<<1|1)
		b = binary.AppendUvarint(b, c)
		l, _, err := decodeLedger(b, 10, 1<<16)
		t.Logf("count-2 = %d: ledger %v, err %v", c, l, err)
		if !errors.Is(err, errLedgerCorrupt) {
			t.Errorf("count-2 = %d decoded as %v, %v; want errLedgerCorrupt", c, l, err)
		}
		b1 := []byte{ledgerVersionStamps}
		b1 = binary.AppendUvarint(b1, 1000)
		b1 = binary.AppendUvarint(b1, 0<<1|1)
		b1 = binary.AppendUvarint(b1, c)
		l, _, err = decodeLedger(b1, 10, 1<<16)
		t.Logf("v1 count-2 = %d: ledger %v, err %v", c, l, err)
		if !errors.Is(err, errLedgerCorrupt) {
			t.Errorf("v1 count-2 = %d decoded as %v, %v; want errLedgerCorrupt", c, l, err)
		}
	}
}
