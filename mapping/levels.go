package mapping

import (
	"math"
	"strings"
)

// ServiceNow impact and urgency values.
const (
	LevelHigh   = "1"
	LevelMedium = "2"
	LevelLow    = "3"
)

// defaultImpacts is the impact per IONIX type from the integration guide;
// any other type is Medium.
func defaultImpact(typ string) string {
	switch strings.ToLower(strings.TrimSpace(typ)) {
	case "vulnerability":
		return LevelHigh
	default: // PKI, DNS, Cloud and everything else
		return LevelMedium
	}
}

// Impact is the ServiceNow impact of an item of type typ: Vulnerability ->
// "1" (High); PKI, DNS, Cloud and any other type -> "2" (Medium). An
// override for the type (keys compared case-insensitively) wins when it is
// "1", "2", "3" or high/medium/low; an override of another value is ignored.
func Impact(typ string, overrides map[string]string) string {
	if v, ok := lookupFold(overrides, strings.TrimSpace(typ)); ok {
		if level, ok := impactLevel(v); ok {
			return level
		}
	}
	return defaultImpact(typ)
}

// impactLevel reads an impact override.
func impactLevel(v string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "high":
		return LevelHigh, true
	case "2", "medium":
		return LevelMedium, true
	case "3", "low":
		return LevelLow, true
	}
	return "", false
}

// Urgency is the ServiceNow urgency of an IONIX urgency: >= 9.0 -> "1"
// (High), >= 7.0 -> "2" (Medium), below (and NaN) -> "3" (Low). So 8.99 is
// "2" and 6.99 is "3".
func Urgency(u float64) string {
	switch {
	case math.IsNaN(u):
		return LevelLow
	case u >= 9.0:
		return LevelHigh
	case u >= 7.0:
		return LevelMedium
	}
	return LevelLow
}

// levelName is the label ServiceNow shows for an impact or urgency value.
func levelName(level string) string {
	switch level {
	case LevelHigh:
		return "High"
	case LevelMedium:
		return "Medium"
	case LevelLow:
		return "Low"
	}
	return level
}
