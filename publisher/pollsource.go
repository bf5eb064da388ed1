package publisher

import (
	"context"
	"encoding/json"

	"github.com/ionix/ionixsnow/ionixapi"
)

// APISource is the Source of the IONIX API: its open and closed action-item lists.
func APISource(c *ionixapi.Client) Source { return apiSource{c} }

type apiSource struct{ c *ionixapi.Client }

func (s apiSource) Open(ctx context.Context, fn func(json.RawMessage) error) error {
	_, err := s.c.Each(ctx, ionixapi.Open, fn)
	return err
}

func (s apiSource) Closed(ctx context.Context, fn func(json.RawMessage) error) error {
	_, err := s.c.Each(ctx, ionixapi.Closed, fn)
	return err
}
