package server

// ApiVersions (key 18), versions 0-4, answered by the server itself from the
// Handler's advertised keys plus its own entry.
//
// Behaviour, as Apache Kafka:
//   - A request version above 4 is answered, not closed: ErrorCode
//     UNSUPPORTED_VERSION in the v0 body format, listing only the ApiVersions
//     entry so the client retries with our maximum (KIP-511).
//   - v3+ carries ClientSoftwareName/Version (KIP-511); they are validated with
//     Kafka's pattern [a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])? and an invalid
//     one gets INVALID_REQUEST. Valid ones are recorded on the ConnInfo.
//   - The response header is always v0 (no tagged-field byte), even when the
//     body is flexible; appendResponse handles that.
//   - v3+ carries the feature flags (KIP-584) as tagged fields: the supported
//     range and the finalized level of transaction.version, which is 2, so
//     clients run transactions v2 (KIP-890 part 2: Produce v12 adds the
//     partition, EndTxn v5 bumps the epoch). A client that does not look at
//     features (librdkafka, sarama, kafkajs) stays on transactions v1, whose
//     requests are unchanged.

import (
	"log/slog"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka error codes used here: the server answers ApiVersions itself.
const (
	errCodeUnsupportedVersion = 35
	errCodeInvalidRequest     = 42
)

// apiVersions builds the response to an ApiVersions request.
func (c *conn) apiVersions(req *Request) *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	if req.apiVersionsTooNew {
		resp.Version = 0
		resp.ErrorCode = errCodeUnsupportedVersion
		resp.ApiKeys = []kmsg.ApiVersionsResponseApiKey{c.s.versions[apiVersionsKey]}
		if c.log.Enabled(c.ctx, slog.LevelDebug) {
			c.log.Debug("unsupported api versions version", "version", req.Version)
		}
		return resp
	}
	resp.Version = req.Version
	body := req.Body.(*kmsg.ApiVersionsRequest)
	if req.Version >= 3 {
		if !validSoftware(body.ClientSoftwareName) || !validSoftware(body.ClientSoftwareVersion) {
			resp.ErrorCode = errCodeInvalidRequest
			return resp
		}
		info := *c.info.Load()
		info.ClientSoftwareName = body.ClientSoftwareName
		info.ClientSoftwareVersion = body.ClientSoftwareVersion
		c.info.Store(&info)
	}
	resp.ApiKeys = c.s.keys // read-only, shared
	if req.Version >= 3 {
		resp.SupportedFeatures = supportedFeatures
		resp.FinalizedFeaturesEpoch = finalizedFeaturesEpoch
		resp.FinalizedFeatures = finalizedFeatures
	}
	return resp
}

// Feature is a feature flag of Gregor's (KIP-584): the levels the code
// supports and the level it runs at.
type Feature struct {
	Name                string
	Min, Max, Finalized int16
}

// Features are a Gregor node's features, fixed by its code: UpdateFeatures
// accepts only the levels they already have, so the finalized levels never
// change and their epoch stays at its first value.
var Features = []Feature{
	{Name: "transaction.version", Min: 0, Max: 2, Finalized: 2},
}

var (
	supportedFeatures = func() (out []kmsg.ApiVersionsResponseSupportedFeature) {
		for _, f := range Features {
			out = append(out, kmsg.ApiVersionsResponseSupportedFeature{Name: f.Name, MinVersion: f.Min, MaxVersion: f.Max})
		}
		return out
	}()
	finalizedFeatures = func() (out []kmsg.ApiVersionsResponseFinalizedFeature) {
		for _, f := range Features {
			out = append(out, kmsg.ApiVersionsResponseFinalizedFeature{Name: f.Name, MinVersionLevel: f.Finalized, MaxVersionLevel: f.Finalized})
		}
		return out
	}()
)

const finalizedFeaturesEpoch = 1

// validSoftware matches Kafka's [a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?.
func validSoftware(s string) bool {
	if s == "" {
		return false
	}
	alnum := func(b byte) bool {
		return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
	}
	if !alnum(s[0]) || !alnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if b := s[i]; !alnum(b) && b != '-' && b != '.' {
			return false
		}
	}
	return true
}
