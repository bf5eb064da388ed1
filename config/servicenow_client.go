package config

import "github.com/ionix/ionixsnow/servicenow"

// Client is the ServiceNow client's configuration from the servicenow section: every
// setting the client has, the one conversion consume, replay, demo and doctor use,
// so that doctor judges the configuration consume runs with.
func (s ServiceNow) Client() servicenow.Config {
	return servicenow.Config{
		InstanceURL: s.InstanceURL, ClientID: s.ClientID, ClientSecret: s.ClientSecret,
		Username: s.Username, Password: s.Password, RefreshToken: s.RefreshToken,
		ImportTable: s.ImportTable, Timeout: s.Timeout,
		AllowInsecureHTTP: s.AllowInsecureHTTP,
	}
}
