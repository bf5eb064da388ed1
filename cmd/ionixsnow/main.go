package main
import (
 _ "github.com/nats-io/nats.go/jetstream"
 _ "github.com/nats-io/nats-server/v2/server"
 _ "golang.org/x/oauth2"
 _ "github.com/rs/zerolog"
 _ "github.com/cenkalti/backoff/v4"
 _ "gopkg.in/yaml.v3"
)
func main(){}
