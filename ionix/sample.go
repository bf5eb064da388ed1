package ionix

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// sampleFinding is the template of one kind of sample action item. %s in the
// texts is replaced by the asset.
type sampleFinding struct {
	title       string
	summary     string
	description string
	assets      []string
	assetType   string
	cves        []string
	tags        []string
}

// sampleCategories lists the sample categories in the order SampleItems
// first cycles through them, so any n >= len(sampleCategories) covers all.
var sampleCategories = []string{
	"Vulnerability", "PKI", "DNS", "Cloud", "Email Security", "Web", "Network", "Data Leak",
}

// sampleFindings holds the templates per category. Hostnames use only the
// reserved example.com / example.net names and documentation IP ranges.
var sampleFindings = map[string][]sampleFinding{
	"Vulnerability": {
		{title: "CVE-2024-3400 PAN-OS GlobalProtect command injection on %s",
			summary:     "A GlobalProtect gateway running a vulnerable PAN-OS version is exposed to the internet.",
			description: "PAN-OS with GlobalProtect configured is affected by a command injection vulnerability that lets an unauthenticated attacker run code with root privileges on the firewall. Upgrade to a fixed PAN-OS hotfix (10.2.9-h1, 11.0.4-h1, 11.1.2-h3 or later) and review the device for signs of compromise.",
			assets:      []string{"vpn.example.net", "gp.example.com"}, assetType: "subdomain",
			cves: []string{"CVE-2024-3400"}, tags: []string{"internet-facing", "kev", "firewall"}},
		{title: "CVE-2023-4966 Citrix NetScaler session token leak (Citrix Bleed) on %s",
			summary:     "A NetScaler ADC/Gateway appliance vulnerable to sensitive information disclosure is reachable.",
			description: "Citrix Bleed lets an attacker read session tokens from memory and hijack authenticated sessions, bypassing MFA. Patch the appliance and kill all active and persistent sessions afterwards.",
			assets:      []string{"citrix.example.com", "remote.example.net"}, assetType: "subdomain",
			cves: []string{"CVE-2023-4966"}, tags: []string{"internet-facing", "kev"}},
		{title: "CVE-2021-44228 Apache Log4j remote code execution (Log4Shell) on %s",
			summary:     "The service responds like an application that embeds a vulnerable Log4j 2 version.",
			description: "JNDI lookups in logged data allow remote code execution. Upgrade Log4j to 2.17.1 or later, or remove the JndiLookup class.",
			assets:      []string{"api.example.com", "search.example.net"}, assetType: "subdomain",
			cves: []string{"CVE-2021-44228", "CVE-2021-45046"}, tags: []string{"java", "production"}},
		{title: "CVE-2024-6387 OpenSSH regreSSHion remote code execution on %s",
			summary:     "An OpenSSH server with a version affected by the signal handler race condition is exposed.",
			description: "A race condition in sshd's SIGALRM handler can allow unauthenticated remote code execution as root on glibc-based Linux systems. Upgrade OpenSSH to 9.8p1 or set LoginGraceTime to 0 as a stop-gap.",
			assets:      []string{"203.0.113.10", "198.51.100.7"}, assetType: "ip",
			cves: []string{"CVE-2024-6387"}, tags: []string{"ssh", "linux"}},
		{title: "CVE-2023-34362 MOVEit Transfer SQL injection on %s",
			summary:     "A MOVEit Transfer web application vulnerable to SQL injection is exposed to the internet.",
			description: "The flaw has been exploited at scale to steal data. Apply the vendor patch and hunt for the human2.aspx web shell.",
			assets:      []string{"files.example.net", "transfer.example.com"}, assetType: "subdomain",
			cves: []string{"CVE-2023-34362"}, tags: []string{"internet-facing", "kev", "file-transfer"}},
	},
	"PKI": {
		{title: "Expired TLS certificate on %s",
			summary:     "The TLS certificate served by the host has expired.",
			description: "Clients refuse or warn about the connection, and users learn to click through certificate warnings. Renew the certificate and automate renewal.",
			assets:      []string{"mail.example.com", "portal.example.net"}, assetType: "certificate",
			tags: []string{"tls", "certificate"}},
		{title: "TLS certificate expiring within 14 days on %s",
			summary:     "The TLS certificate served by the host expires soon.",
			description: "Renew the certificate before it expires to avoid an outage.",
			assets:      []string{"shop.example.net", "www.example.com"}, assetType: "certificate",
			tags: []string{"tls", "expiry"}},
		{title: "Self-signed certificate on %s",
			summary:     "The host presents a certificate that is not signed by a trusted authority.",
			description: "Self-signed certificates cannot be validated by clients and enable man-in-the-middle attacks. Replace it with a certificate from a trusted CA.",
			assets:      []string{"admin.example.com", "192.0.2.44"}, assetType: "certificate",
			tags: []string{"tls"}},
		{title: "Certificate hostname mismatch on %s",
			summary:     "The certificate does not cover the hostname it is served for.",
			description: "Das Zertifikat deckt den Hostnamen nicht ab — Browser zeigen eine Warnung. Issue a certificate whose subject alternative names include the host.",
			assets:      []string{"legacy.example.net"}, assetType: "certificate",
			tags: []string{"tls", "naming"}},
	},
	"DNS": {
		{title: "Dangling CNAME allows subdomain takeover of %s",
			summary:     "A CNAME record points to a cloud resource that no longer exists.",
			description: "Anyone who claims the resource can serve content under your domain. Remove the record or reclaim the resource.",
			assets:      []string{"promo.example.com", "events.example.net"}, assetType: "subdomain",
			tags: []string{"takeover", "dns"}},
		{title: "DNS zone transfer (AXFR) allowed on %s",
			summary:     "The name server answers full zone transfer requests from any host.",
			description: "A zone transfer discloses every record of the zone. Restrict AXFR to the secondary name servers.",
			assets:      []string{"ns1.example.net", "ns2.example.com"}, assetType: "domain",
			tags: []string{"dns"}},
		{title: "DNSSEC not enabled for %s",
			summary:     "The zone is not signed.",
			description: "Without DNSSEC, resolvers cannot detect forged answers.",
			assets:      []string{"example.com", "example.net"}, assetType: "domain",
			tags: []string{"dns", "hardening"}},
	},
	"Cloud": {
		{title: "Publicly readable storage bucket %s",
			summary:     "A cloud storage bucket lists and serves its objects to anonymous users.",
			description: "The bucket contains files that look like database backups. Block public access and review the access logs.",
			assets:      []string{"backups-example-com", "static-example-net"}, assetType: "cloud_resource",
			tags: []string{"aws", "s3", "data-exposure"}},
		{title: "Kubernetes API server exposed to the internet on %s",
			summary:     "The Kubernetes API server answers requests from the internet.",
			description: "Restrict the API server to trusted networks or a private endpoint.",
			assets:      []string{"k8s.example.com", "203.0.113.80"}, assetType: "ip",
			tags: []string{"kubernetes", "internet-facing"}},
		{title: "Unauthenticated Elasticsearch cluster on %s",
			summary:     "An Elasticsearch cluster answers without authentication.",
			description: "Indices can be read and deleted by anyone. Enable security features and bind to a private address.",
			assets:      []string{"198.51.100.23", "logs.example.net"}, assetType: "ip",
			tags: []string{"database", "data-exposure"}},
	},
	"Email Security": {
		{title: "Missing DMARC record on %s",
			summary:     "The domain publishes no DMARC policy.",
			description: "Without DMARC, receivers cannot reject mail that spoofs the domain. Publish a DMARC record, starting with p=none and reporting.",
			assets:      []string{"example.net", "example.com"}, assetType: "domain",
			tags: []string{"email", "spoofing"}},
		{title: "SPF record allows any sender (+all) on %s",
			summary:     "The SPF record ends with +all.",
			description: "+all authorises every host on the internet to send mail for the domain. Replace it with ~all or -all.",
			assets:      []string{"example.com", "mail.example.net"}, assetType: "domain",
			tags: []string{"email", "spf"}},
		{title: "No DKIM signature on mail from %s",
			summary:     "Mail sent for the domain is not DKIM-signed.",
			description: "Enable DKIM signing on every service that sends mail for the domain.",
			assets:      []string{"newsletter.example.com"}, assetType: "domain",
			tags: []string{"email"}},
	},
	"Web": {
		{title: "Administrative login page exposed on %s",
			summary:     "A login page for an administrative interface is reachable from the internet.",
			description: "Put the interface behind a VPN or an identity-aware proxy and enforce MFA.",
			assets:      []string{"admin.example.net", "cms.example.com"}, assetType: "subdomain",
			tags: []string{"login", "internet-facing"}},
		{title: "Missing HTTP Strict Transport Security header on %s",
			summary:     "The site does not send a Strict-Transport-Security header.",
			description: "Browsers may connect over plain HTTP first, which allows SSL stripping. Send HSTS with a long max-age.",
			assets:      []string{"www.example.com", "shop.example.net"}, assetType: "subdomain",
			tags: []string{"headers", "hardening"}},
		{title: "Outdated WordPress 5.8 on %s",
			summary:     "The site runs a WordPress version that no longer receives security updates.",
			description: "Update WordPress core, themes and plugins; remove unused plugins. 📝 Owner: web team (ウェブチーム).",
			assets:      []string{"blog.example.com"}, assetType: "subdomain",
			cves: []string{"CVE-2022-21661"}, tags: []string{"cms", "wordpress"}},
	},
	"Network": {
		{title: "RDP service exposed to the internet on %s",
			summary:     "Remote Desktop (TCP 3389) accepts connections from the internet.",
			description: "Exposed RDP is a common ransomware entry point. Close the port and use a VPN or a gateway with MFA.",
			assets:      []string{"203.0.113.45", "198.51.100.99"}, assetType: "ip",
			tags: []string{"rdp", "ransomware"}},
		{title: "Telnet service open on %s",
			summary:     "A Telnet service (TCP 23) is reachable from the internet.",
			description: "Telnet sends credentials in clear text. Disable it and use SSH.",
			assets:      []string{"192.0.2.17"}, assetType: "ip",
			tags: []string{"legacy-protocol"}},
	},
	"Data Leak": {
		{title: "Credentials for %s found in a public code repository",
			summary:     "A public repository contains what look like valid credentials for the asset.",
			description: "Rotate the credentials, remove them from the repository history, and scan for use of the leaked secret.",
			assets:      []string{"api.example.net", "ci.example.com"}, assetType: "subdomain",
			tags: []string{"secrets", "github"}},
	},
}

// sampleBoundaryUrgencies come first so that small samples already test the
// mapping boundaries (SPEC §4: 9.0 -> High, 7.0 -> Medium, below -> Low).
var sampleBoundaryUrgencies = []float64{10, 9.0, 8.9, 7.0, 6.9, 0.5, 9.3, 5.0}

// sampleZones are the offsets first_opened_at is written in.
var sampleZones = []*time.Location{
	time.UTC,
	time.FixedZone("CEST", 2*3600),
	time.FixedZone("EST", -5*3600),
	time.FixedZone("IST", 5*3600+1800),
	time.FixedZone("JST", 9*3600),
	time.FixedZone("PDT", -7*3600),
}

// sampleGroups are the IONIX groups put into Extra["groups"].
var sampleGroups = []string{"Production", "Marketing", "Corporate IT", "Subsidiary EU"}

// SampleItems returns n realistic action items for demos and tests. The same
// n and seed always give the same items, and SampleItems(m, seed) is a prefix
// of SampleItems(n, seed) for m <= n. The first items cover every category
// and the urgency boundaries 10, 9.0, 8.9, 7.0, 6.9 and 0.5; later ones are
// random (urgency 0.5..10 in steps of 0.1). Ids are unique; each item is
// valid and has Extra fields ("groups", "acknowledged_by") as IONIX sends them.
func SampleItems(n int, seed int64) []ActionItem {
	if n <= 0 {
		return nil
	}
	items := make([]ActionItem, n)
	for i := range items {
		items[i] = sampleItem(i, seed)
	}
	return items
}

// sampleItem builds item i of the sample with the given seed; it depends on
// nothing else, which keeps shorter samples prefixes of longer ones.
func sampleItem(i int, seed int64) ActionItem {
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(i)))

	category := sampleCategories[rng.IntN(len(sampleCategories))]
	if i < len(sampleCategories) {
		category = sampleCategories[i]
	}
	findings := sampleFindings[category]
	finding := findings[rng.IntN(len(findings))]
	asset := finding.assets[rng.IntN(len(finding.assets))]

	urgency := float64(5+rng.IntN(96)) / 10 // 0.5 .. 10.0
	if i < len(sampleBoundaryUrgencies) {
		urgency = sampleBoundaryUrgencies[i]
	}

	base := time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)
	firstOpened := base.Add(time.Duration(rng.IntN(300*24*60)) * time.Minute).Add(time.Duration(rng.IntN(60)) * time.Second)
	lastOpened := firstOpened.Add(time.Duration(rng.IntN(30*24)) * time.Hour)
	updated := lastOpened.Add(time.Duration(rng.IntN(7*24*60)) * time.Minute)
	zone := sampleZones[i%len(sampleZones)]
	firstOpenedText := firstOpened.In(zone).Format(time.RFC3339)
	if i%4 == 3 {
		firstOpenedText = firstOpened.Add(time.Duration(rng.IntN(1e6)) * time.Microsecond).In(zone).Format(time.RFC3339Nano)
	}

	tags := append([]string(nil), finding.tags...)
	if rng.IntN(2) == 0 {
		tags = append(tags, "production")
	}
	isOpen := true
	group := sampleGroups[rng.IntN(len(sampleGroups))]
	groups, _ := json.Marshal([]map[string]any{{"id": 100 + rng.IntN(900), "name": group}})

	return ActionItem{
		ID:            sampleID(rng, i),
		Title:         fmt.Sprintf(finding.title, asset),
		Summary:       finding.summary,
		Description:   finding.description,
		Asset:         asset,
		AssetType:     finding.assetType,
		Type:          category,
		Urgency:       urgency,
		CurrentState:  "open",
		FirstOpenedAt: firstOpenedText,
		LastOpenedAt:  lastOpened.Format(time.RFC3339),
		UpdatedTime:   updated.Format(time.RFC3339Nano),
		IsOpen:        &isOpen,
		Tags:          tags,
		CVEs:          append([]string(nil), finding.cves...),
		Extra: map[string]json.RawMessage{
			"groups":          groups,
			"acknowledged_by": json.RawMessage("null"),
		},
	}
}

// sampleID is a UUID-shaped id whose last group carries the index, which
// makes ids unique within a sample.
func sampleID(rng *rand.Rand, i int) string {
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x",
		rng.Uint32(), rng.IntN(1<<16), rng.IntN(1<<12), 0x8000|rng.IntN(1<<14), i)
}
