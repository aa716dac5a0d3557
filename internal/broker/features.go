package broker

// UpdateFeatures (key 57) v0-2, KIP-584. Gregor's feature levels are fixed
// by its code (server.Features): an update is checked as Kafka's
// FeatureControlManager checks it, and one that would change a level is
// refused with INVALID_UPDATE_VERSION, as is any unknown feature, level or
// upgrade type. As in Kafka, one refused update fails the whole request
// with a top-level error and no per-feature results.

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/server"
)

// Upgrade types of UpdateFeatures v1+ (v0's allow_downgrade is a safe
// downgrade).
const (
	upgradeOnly     = 1
	safeDowngrade   = 2
	unsafeDowngrade = 3
)

func handleUpdateFeatures(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.UpdateFeaturesRequest)
	resp := req.ResponseKind().(*kmsg.UpdateFeaturesResponse)
	for _, u := range req.FeatureUpdates {
		if msg := checkFeatureUpdate(u, req.Version); msg != "" {
			resp.ErrorCode = kerr.InvalidUpdateVersion.Code
			resp.ErrorMessage = &msg
			resp.Results = nil
			return done(resp)
		}
		r := kmsg.NewUpdateFeaturesResponseResult()
		r.Feature = u.Feature
		resp.Results = append(resp.Results, r)
	}
	return done(resp)
}

// checkFeatureUpdate returns why u is refused, "" when it changes nothing.
func checkFeatureUpdate(u kmsg.UpdateFeaturesRequestFeatureUpdate, version int16) string {
	typ := u.UpgradeType
	if version == 0 {
		typ = upgradeOnly
		if u.AllowDowngrade {
			typ = safeDowngrade
		}
	}
	invalid := func(reason string) string {
		return fmt.Sprintf("Invalid update version %d for feature %s. %s", u.MaxVersionLevel, u.Feature, reason)
	}
	if typ != upgradeOnly && typ != safeDowngrade && typ != unsafeDowngrade {
		return invalid("The controller does not support the given upgrade type.")
	}
	if u.MaxVersionLevel < 0 {
		return invalid("A feature version cannot be less than 0.")
	}
	var f *server.Feature
	for i := range server.Features {
		if server.Features[i].Name == u.Feature {
			f = &server.Features[i]
		}
	}
	switch {
	case f == nil:
		return invalid("The controller does not support this feature.")
	case u.MaxVersionLevel < f.Min || u.MaxVersionLevel > f.Max:
		return invalid(fmt.Sprintf("The controller only supports versions %d-%d.", f.Min, f.Max))
	case u.MaxVersionLevel < f.Finalized && typ == upgradeOnly:
		return invalid("Can't downgrade the version of this feature without setting the upgrade type to either safe or unsafe downgrade.")
	case u.MaxVersionLevel > f.Finalized && typ != upgradeOnly:
		return invalid("Can't downgrade to a newer version.")
	case u.MaxVersionLevel != f.Finalized:
		return invalid(fmt.Sprintf("Gregor runs %s %d and cannot change it.", f.Name, f.Finalized))
	}
	return ""
}
