// Package tenant is every customer's integration in one deployment (SPEC §9): a
// tenant's id (its IONIX account, lower-cased), its settings (the per-customer
// sections of the config file, whether it is active), and the store that keeps them
// in the KV bucket ionix_integrations with every secret sealed (see package secrets),
// each ciphertext bound to its tenant and field. The tenant "default" is the
// single-tenant form: the config file describes it, the bucket never holds it.
package tenant
