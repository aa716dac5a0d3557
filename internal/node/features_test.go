package node_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestE2EUpdateFeatures: UpdateFeatures accepts a feature at the level it
// already has and refuses, as Kafka's controller, an unknown feature, a
// level out of range, a downgrade asked as an upgrade, and (Gregor's
// levels being fixed) any change; one refused update fails the request
// with a top-level INVALID_UPDATE_VERSION and no results (sarama's
// TestFuncAdminUpdateFeatures sends an unknown feature).
func TestE2EUpdateFeatures(t *testing.T) {
	n := startNode(t, t.TempDir(), nil)
	_, cl := newAdmin(t, n)
	type update struct {
		feature string
		level   int16
		typ     int8
	}
	send := func(version int16, us ...update) *kmsg.UpdateFeaturesResponse {
		t.Helper()
		req := kmsg.NewPtrUpdateFeaturesRequest()
		req.Version = version
		for _, u := range us {
			fu := kmsg.NewUpdateFeaturesRequestFeatureUpdate()
			fu.Feature, fu.MaxVersionLevel, fu.UpgradeType = u.feature, u.level, u.typ
			fu.AllowDowngrade = u.typ == 2
			req.FeatureUpdates = append(req.FeatureUpdates, fu)
		}
		return rawRequest[*kmsg.UpdateFeaturesResponse](t, cl, req)
	}
	for _, tc := range []struct {
		name    string
		version int16
		updates []update
		ok      bool
	}{
		{"current level", 1, []update{{"transaction.version", 2, 1}}, true},
		{"unknown feature", 1, []update{{"sarama.unsupported.feature", 1, 1}}, false},
		{"one bad of two", 1, []update{{"transaction.version", 2, 1}, {"no.such.feature", 1, 1}}, false},
		{"above the range", 1, []update{{"transaction.version", 3, 1}}, false},
		{"downgrade as an upgrade", 1, []update{{"transaction.version", 1, 1}}, false},
		{"safe downgrade (the level is fixed)", 1, []update{{"transaction.version", 1, 2}}, false},
		{"unknown upgrade type", 1, []update{{"transaction.version", 2, 9}}, false},
		{"negative level", 1, []update{{"transaction.version", -1, 3}}, false},
	} {
		resp := send(tc.version, tc.updates...)
		switch {
		case tc.ok && (resp.ErrorCode != 0 || resp.Version < 2 && len(resp.Results) != len(tc.updates)): // v2 has no results
			t.Errorf("%s: %v (%v), %d results; want success", tc.name, kerr.ErrorForCode(resp.ErrorCode), resp.ErrorMessage, len(resp.Results))
		case tc.ok:
			for _, r := range resp.Results {
				if r.ErrorCode != 0 {
					t.Errorf("%s: %s: %v", tc.name, r.Feature, kerr.ErrorForCode(r.ErrorCode))
				}
			}
		case resp.ErrorCode != kerr.InvalidUpdateVersion.Code || len(resp.Results) != 0 || resp.ErrorMessage == nil:
			t.Errorf("%s: %v, %d results; want INVALID_UPDATE_VERSION with a message and no results", tc.name, kerr.ErrorForCode(resp.ErrorCode), len(resp.Results))
		}
	}
}
