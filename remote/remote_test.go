package remote_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/remote"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		value string
		want  time.Duration
	}{
		{"", 0}, {"0", 0}, {"-5", 0}, {"7", 7 * time.Second}, {" 30 ", 30 * time.Second},
		{"99999999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"soon", 0},
	} {
		h := http.Header{}
		if tt.value != "" {
			h.Set("Retry-After", tt.value)
		}
		if got := remote.RetryAfter(h, now); got != tt.want {
			t.Errorf("RetryAfter(%q) = %s, want %s", tt.value, got, tt.want)
		}
	}
}

func TestIsHTMLAndIsLoopback(t *testing.T) {
	for ct, want := range map[string]bool{"text/html; charset=utf-8": true, "application/xhtml+xml": true,
		"application/json": false, "text/html;;bad": true, "": false} {
		if got := remote.IsHTML(ct); got != want {
			t.Errorf("IsHTML(%q) = %v", ct, got)
		}
	}
	for host, want := range map[string]bool{"localhost": true, "127.0.0.2": true, "::1": true,
		"10.0.0.1": false, "localhost.evil.example": false} {
		if got := remote.IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v", host, got)
		}
	}
}

func TestHTMLTitle(t *testing.T) {
	for page, want := range map[string]string{
		"<html><head><TITLE>  Instance\n Hibernating </title>": "Instance Hibernating",
		"<title>İİİ <b></TiTlE>":                               "İİİ <b>",
		"<title>no end":                                        "",
		"no title":                                             "",
		"<html><title></title>":                                "",
	} {
		if got := remote.HTMLTitle(page); got != want {
			t.Errorf("HTMLTitle(%q) = %q, want %q", page, got, want)
		}
	}
}
