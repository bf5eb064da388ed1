package servicenow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
)

// namedClass is the expected class of every status code net/http names,
// outside 2xx (which the result status decides).
var namedClass = map[int]Class{
	http.StatusContinue:           ClassTransient,
	http.StatusSwitchingProtocols: ClassTransient,
	http.StatusProcessing:         ClassTransient,
	http.StatusEarlyHints:         ClassTransient,

	http.StatusMultipleChoices:   ClassConfiguration,
	http.StatusMovedPermanently:  ClassConfiguration,
	http.StatusFound:             ClassConfiguration,
	http.StatusSeeOther:          ClassConfiguration,
	http.StatusNotModified:       ClassConfiguration,
	http.StatusUseProxy:          ClassConfiguration,
	http.StatusTemporaryRedirect: ClassConfiguration,
	http.StatusPermanentRedirect: ClassConfiguration,

	http.StatusBadRequest:                   ClassPermanent,
	http.StatusUnauthorized:                 ClassConfiguration,
	http.StatusPaymentRequired:              ClassConfiguration,
	http.StatusForbidden:                    ClassConfiguration,
	http.StatusNotFound:                     ClassConfiguration,
	http.StatusMethodNotAllowed:             ClassConfiguration,
	http.StatusNotAcceptable:                ClassConfiguration,
	http.StatusProxyAuthRequired:            ClassConfiguration,
	http.StatusRequestTimeout:               ClassTransient,
	http.StatusConflict:                     ClassTransient,
	http.StatusGone:                         ClassConfiguration,
	http.StatusLengthRequired:               ClassConfiguration,
	http.StatusPreconditionFailed:           ClassConfiguration,
	http.StatusRequestEntityTooLarge:        ClassPermanent,
	http.StatusRequestURITooLong:            ClassPermanent,
	http.StatusUnsupportedMediaType:         ClassConfiguration,
	http.StatusRequestedRangeNotSatisfiable: ClassConfiguration,
	http.StatusExpectationFailed:            ClassConfiguration,
	http.StatusTeapot:                       ClassConfiguration,
	http.StatusMisdirectedRequest:           ClassConfiguration,
	http.StatusUnprocessableEntity:          ClassPermanent,
	http.StatusLocked:                       ClassTransient,
	http.StatusFailedDependency:             ClassConfiguration,
	http.StatusTooEarly:                     ClassTransient,
	http.StatusUpgradeRequired:              ClassConfiguration,
	http.StatusPreconditionRequired:         ClassConfiguration,
	http.StatusTooManyRequests:              ClassTransient,
	http.StatusRequestHeaderFieldsTooLarge:  ClassConfiguration,
	http.StatusUnavailableForLegalReasons:   ClassConfiguration,

	http.StatusInternalServerError:           ClassTransient,
	http.StatusNotImplemented:                ClassTransient,
	http.StatusBadGateway:                    ClassTransient,
	http.StatusServiceUnavailable:            ClassTransient,
	http.StatusGatewayTimeout:                ClassTransient,
	http.StatusHTTPVersionNotSupported:       ClassTransient,
	http.StatusVariantAlsoNegotiates:         ClassTransient,
	http.StatusInsufficientStorage:           ClassTransient,
	http.StatusLoopDetected:                  ClassTransient,
	http.StatusNotExtended:                   ClassTransient,
	http.StatusNetworkAuthenticationRequired: ClassTransient,
}

// resultClass is the expected class of a 2xx JSON answer by result status.
var resultClass = map[string]Class{
	"":         ClassSuccess, // no per-record status (Table API reads)
	"inserted": ClassSuccess,
	"updated":  ClassSuccess,
	"UPDATED":  ClassSuccess,
	"error":    ClassPermanent,
	"ignored":  ClassPermanent,
	"skipped":  ClassPermanent,
	"pending":  ClassConfiguration, // unknown: pause rather than dead-letter everything
}

var contentTypes = []struct {
	value string
	html  bool
}{
	{"application/json", false},
	{"application/json;charset=UTF-8", false},
	{"", false},
	{"text/plain", false},
	{"text/html; charset=UTF-8", true},
	{"TEXT/HTML", true},
	{"application/xhtml+xml", true},
	{"text/html;;bogus", true}, // unparsable, still HTML
}

func TestClassify(t *testing.T) {
	for code := 100; code <= 599; code++ {
		named := http.StatusText(code) != ""
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			for _, ct := range contentTypes {
				for rs, rsClass := range resultClass {
					var want Class
					switch {
					case code >= 200 && code <= 299 && ct.html:
						want = ClassTransient // hibernating instance
					case code >= 200 && code <= 299:
						want = rsClass
					case named:
						c, ok := namedClass[code]
						if !ok {
							t.Fatalf("status %d (%s) has no expected class in the test", code, http.StatusText(code))
						}
						want = c
					case code < 200, code >= 500:
						want = ClassTransient
					default: // unnamed 3xx and 4xx
						want = ClassConfiguration
					}
					if got := Classify(code, ct.value, rs); got != want {
						t.Errorf("Classify(%d, %q, %q) = %v, want %v", code, ct.value, rs, got, want)
					}
				}
			}
		})
	}
	t.Run("outside 100..599", func(t *testing.T) {
		for _, code := range []int{0, -1, 99, 600, 999} {
			if got := Classify(code, "application/json", ""); got != ClassTransient {
				t.Errorf("Classify(%d) = %v, want transient", code, got)
			}
		}
	})
}

func TestErrorIs(t *testing.T) {
	sentinels := []error{ErrTransient, ErrConfiguration, ErrRejected}
	for _, tt := range []struct {
		class Class
		want  error
	}{
		{ClassTransient, ErrTransient},
		{ClassConfiguration, ErrConfiguration},
		{ClassPermanent, ErrRejected},
		{ClassSuccess, nil},
	} {
		t.Run(tt.class.String(), func(t *testing.T) {
			var err error = fmt.Errorf("wrapped: %w", &Error{Class: tt.class, Err: context.Canceled})
			for _, s := range sentinels {
				if got := errors.Is(err, s); got != (s == tt.want) {
					t.Errorf("errors.Is(%v, %v) = %v", err, s, got)
				}
			}
			if !errors.Is(err, context.Canceled) {
				t.Error("cause not unwrapped")
			}
			if got := ErrorClass(err); got != tt.class {
				t.Errorf("ErrorClass = %v, want %v", got, tt.class)
			}
		})
	}
	if ErrorClass(nil) != ClassSuccess || ErrorClass(errors.New("x")) != ClassTransient {
		t.Error("ErrorClass of nil or a plain error")
	}
	if s := Class(9).String(); s != "Class(9)" {
		t.Errorf("Class(9).String() = %q", s)
	}
}

func TestErrorString(t *testing.T) {
	e := &Error{Class: ClassConfiguration, Op: OpImport, StatusCode: 403, Message: "Operation Failed",
		Fix: "grant the role", RetryAfter: 0}
	want := "servicenow: import: configuration: HTTP 403: Operation Failed (fix: grant the role)"
	if e.Error() != want {
		t.Errorf("got  %q\nwant %q", e.Error(), want)
	}
	e = &Error{Class: ClassTransient, Op: OpImport, StatusCode: 429, Message: "Too Many Requests", RetryAfter: 7e9}
	if want := "servicenow: import: transient: HTTP 429: Too Many Requests (retry after 7s)"; e.Error() != want {
		t.Errorf("got  %q\nwant %q", e.Error(), want)
	}
	e = &Error{Class: ClassPermanent, Op: OpImport, StatusCode: 201, ResultStatus: "error", Message: "bad row"}
	if want := "servicenow: import: permanent: HTTP 201: status error: bad row"; e.Error() != want {
		t.Errorf("got  %q\nwant %q", e.Error(), want)
	}
}
