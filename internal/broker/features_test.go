package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFeatureUpdateV0: UpdateFeatures v0 has allow_downgrade where v1 has
// the upgrade type: false is an upgrade, true a safe downgrade.
func TestFeatureUpdateV0(t *testing.T) {
	u := kmsg.NewUpdateFeaturesRequestFeatureUpdate()
	u.Feature, u.MaxVersionLevel = "transaction.version", 2
	if msg := checkFeatureUpdate(u, 0); msg != "" {
		t.Errorf("v0 at the current level: %s", msg)
	}
	u.MaxVersionLevel = 1
	if msg := checkFeatureUpdate(u, 0); msg == "" {
		t.Errorf("v0 downgrade without allow_downgrade accepted")
	}
	u.AllowDowngrade = true
	if msg := checkFeatureUpdate(u, 0); msg == "" || msg == checkFeatureUpdate(kmsg.UpdateFeaturesRequestFeatureUpdate{Feature: "transaction.version", MaxVersionLevel: 1}, 0) {
		t.Errorf("v0 downgrade with allow_downgrade: %q, want the fixed-level refusal", msg)
	}
}
