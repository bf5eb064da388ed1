package config_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/ionix/ionixsnow/config"
)

// TestClientCarriesEverySetting: with every setting of the servicenow section
// set, every field of the client's configuration is set, so doctor cannot judge a
// configuration other than the one consume runs with (it once dropped
// allow_insecure_http).
func TestClientCarriesEverySetting(t *testing.T) {
	var s config.ServiceNow
	v := reflect.ValueOf(&s).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("set")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int64: // time.Duration
			f.SetInt(int64(time.Second))
		case reflect.Map:
			f.Set(reflect.ValueOf(map[string]string{"k": "v"}))
		default:
			t.Fatalf("field %s of kind %s: extend this test", v.Type().Field(i).Name, f.Kind())
		}
	}
	c := reflect.ValueOf(s.Client())
	for i := range c.NumField() {
		if c.Field(i).IsZero() {
			t.Errorf("servicenow.Config.%s is not carried over from the servicenow section", c.Type().Field(i).Name)
		}
	}
}
