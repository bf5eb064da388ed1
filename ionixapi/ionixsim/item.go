package ionixsim

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/ionix/ionixsnow/ionix"
)

// itemAssets are the assets Item picks from (reserved example names and
// documentation addresses only).
var itemAssets = []struct{ name, typ string }{
	{"www.example.com", "subdomain"},
	{"mail.example.com", "subdomain"},
	{"api.example.net", "subdomain"},
	{"vpn.example.net", "subdomain"},
	{"203.0.113.10", "ip"},
	{"198.51.100.7", "ip"},
	{"example.org", "domain"},
}

// itemEpoch is the latest first_opened_at Item writes.
var itemEpoch = time.Date(2025, time.March, 3, 9, 15, 0, 0, time.UTC)

// Item returns a realistic action item as the IONIX API sends it:
// "title": {"label": title}, "urgency": {"urgency": urgency}, "type": typ,
// a summary and description, an asset and asset_type, current_state "open",
// first_opened_at, last_opened_at and updated_time (RFC 3339, derived from
// the id, so the same arguments always give the same bytes), "is_open":
// true, tags, groups and acknowledged_by. With a non-blank id, title and
// typ and an urgency in 0..10 ionix.Decode accepts it; other values make
// the invalid items tests may want. Item panics if urgency is NaN or
// infinite (JSON has no such number).
func Item(id, title, typ string, urgency float64) json.RawMessage {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	sum := h.Sum64()
	asset := itemAssets[sum%uint64(len(itemAssets))]
	first := itemEpoch.Add(-time.Duration(sum%(180*24)) * time.Hour)
	isOpen := true
	item := ionix.ActionItem{
		ID:      id,
		Title:   title,
		Summary: fmt.Sprintf("IONIX found this %s issue on %s, which is reachable from the internet.", typ, asset.name),
		Description: "Review the evidence in the IONIX portal, remediate the finding on the asset, " +
			"and IONIX closes the action item on its next scan.",
		Asset:         asset.name,
		AssetType:     asset.typ,
		Type:          typ,
		Urgency:       urgency,
		CurrentState:  "open",
		FirstOpenedAt: first.Format(time.RFC3339),
		LastOpenedAt:  first.Format(time.RFC3339),
		UpdatedTime:   first.Add(time.Duration(sum%(7*24*60)) * time.Minute).Format(time.RFC3339),
		IsOpen:        &isOpen,
		Tags:          []string{"internet-facing"},
		Extra: map[string]json.RawMessage{
			"groups":          json.RawMessage(fmt.Sprintf(`[{"id":%d,"name":"Production"}]`, 100+sum%900)),
			"acknowledged_by": json.RawMessage("null"),
		},
	}
	b, err := item.MarshalJSON()
	if err != nil {
		panic(fmt.Sprintf("ionixsim.Item(%q): %v", id, err))
	}
	return b
}

// Sample returns n items of ionix.SampleItems(n, seed) as the API sends
// them: every category, the urgency boundaries, unique ids.
func Sample(n int, seed int64) []json.RawMessage {
	items := ionix.SampleItems(n, seed)
	out := make([]json.RawMessage, len(items))
	for i, it := range items {
		b, err := it.MarshalJSON()
		if err != nil { // sample items are valid
			panic(fmt.Sprintf("ionixsim.Sample: %v", err))
		}
		out[i] = b
	}
	return out
}
