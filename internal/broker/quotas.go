package broker

// Client quotas (KIP-546): AlterClientQuotas (key 49), forwarded to the
// active controller, which keeps them in the metadata log; and
// DescribeClientQuotas (key 48), answered from this broker's image as
// Kafka's brokers answer from their metadata cache. Enforcement is the
// quota package's (produce.go and fetch.go record the bytes).

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gregor-dev/gregor/internal/controller"
	"github.com/gregor-dev/gregor/internal/metadata"
	"github.com/gregor-dev/gregor/internal/quota"
	"github.com/gregor-dev/gregor/internal/server"
)

// errInvalidQuotaRequest is a malformed quota entity or filter
// (INVALID_REQUEST, before the controller is asked).
var errInvalidQuotaRequest = errors.New("broker: invalid client quota request")

// userOf is the user a request's quotas are of: the connection's SASL
// user, else Kafka's ANONYMOUS.
func userOf(sreq *server.Request) string {
	if sreq.Conn == nil || sreq.Conn.User == "" {
		return quota.Anonymous
	}
	return sreq.Conn.User
}

// throttleMillis is a throttle time in a response's int32 milliseconds.
func throttleMillis(d time.Duration) int32 {
	return int32(min(d.Milliseconds(), math.MaxInt32))
}

func handleAlterClientQuotas(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.AlterClientQuotasRequest)
	resp := req.ResponseKind().(*kmsg.AlterClientQuotasResponse)
	errs := make([]error, len(req.Entries))
	var alts []controller.QuotaAlteration
	var at []int // request index of each alteration
	seen := map[metadata.QuotaEntity]bool{}
	for i, en := range req.Entries {
		var e metadata.QuotaEntity
		for _, part := range en.Entity {
			p := e.Part(part.Type)
			switch {
			case p == nil:
				errs[i] = fmt.Errorf("%w: unhandled client quota entity type %q", errInvalidQuotaRequest, part.Type)
			case p.Present:
				errs[i] = fmt.Errorf("%w: duplicate entity entry %s", errInvalidQuotaRequest, part.Type)
			case part.Name != nil && *part.Name == "":
				errs[i] = fmt.Errorf("%w: empty %s not supported", errInvalidQuotaRequest, part.Type)
			default:
				*p = metadata.QuotaName{Present: true, Default: part.Name == nil}
				if part.Name != nil {
					p.Name = *part.Name
				}
			}
		}
		ops := map[string]*float64{}
		for _, op := range en.Ops {
			if _, dup := ops[op.Key]; dup {
				errs[i] = fmt.Errorf("%w: duplicate quota key %s", errInvalidQuotaRequest, op.Key)
			}
			var v *float64
			if !op.Remove {
				v = &op.Value
			}
			ops[op.Key] = v
		}
		if errs[i] == nil && seen[e] {
			errs[i] = fmt.Errorf("%w: ignoring duplicate entity %s", errInvalidQuotaRequest, e)
		}
		if errs[i] == nil {
			seen[e] = true
			alts = append(alts, controller.QuotaAlteration{Entity: e, Ops: ops})
			at = append(at, i)
		}
	}
	if len(alts) > 0 {
		cerrs, err := b.ctrl.AlterClientQuotas(ctx, alts, req.ValidateOnly)
		for k, i := range at {
			if err != nil {
				errs[i] = err
			} else {
				errs[i] = cerrs[k]
			}
		}
	}
	for i, en := range req.Entries {
		re := kmsg.NewAlterClientQuotasResponseEntry()
		for _, part := range en.Entity {
			rp := kmsg.NewAlterClientQuotasResponseEntryEntity()
			rp.Type, rp.Name = part.Type, part.Name
			re.Entity = append(re.Entity, rp)
		}
		if errs[i] != nil {
			re.ErrorCode, re.ErrorMessage = b.errorCode(errs[i]), errorMessage(errs[i])
		}
		resp.Entries = append(resp.Entries, re)
	}
	return done(resp)
}

func handleDescribeClientQuotas(b *Broker, ctx context.Context, sreq *server.Request) server.Completion {
	req := sreq.Body.(*kmsg.DescribeClientQuotasRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClientQuotasResponse)
	match, code, err := quotaFilter(req)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = code, errorMessage(err)
		return done(resp)
	}
	img := b.image()
	for _, e := range slices.SortedFunc(maps.Keys(img.ClientQuotas), metadata.CompareQuotaEntity) {
		if !match(e) {
			continue
		}
		re := kmsg.NewDescribeClientQuotasResponseEntry()
		for _, typ := range metadata.QuotaTypes {
			p := e.Part(typ)
			if !p.Present {
				continue
			}
			rp := kmsg.NewDescribeClientQuotasResponseEntryEntity()
			rp.Type = typ
			if !p.Default {
				rp.Name = kmsg.StringPtr(p.Name)
			}
			re.Entity = append(re.Entity, rp)
		}
		q := img.ClientQuotas[e]
		for _, k := range slices.Sorted(maps.Keys(q)) {
			rv := kmsg.NewDescribeClientQuotasResponseEntryValue()
			rv.Key, rv.Value = k, q[k]
			re.Values = append(re.Values, rv)
		}
		resp.Entries = append(resp.Entries, re)
	}
	return done(resp)
}

// quotaFilter turns DescribeClientQuotas' components into a match, with
// Kafka's checks (ClientQuotasImage.describe): each type at most once, an
// exact match names something, a default or "any" match names nothing,
// and IP is not combined with user or client id.
func quotaFilter(req *kmsg.DescribeClientQuotasRequest) (func(metadata.QuotaEntity) bool, int16, error) {
	type want struct {
		exact bool // else any name, the default included
		name  metadata.QuotaName
	}
	wants := map[string]want{}
	for _, c := range req.Components {
		if c.EntityType == "" {
			return nil, kerr.InvalidRequest.Code, errors.New("invalid empty entity type")
		}
		if _, dup := wants[c.EntityType]; dup {
			return nil, kerr.InvalidRequest.Code, fmt.Errorf("entity type %s cannot appear more than once in the filter", c.EntityType)
		}
		if (&metadata.QuotaEntity{}).Part(c.EntityType) == nil {
			return nil, kerr.UnsupportedVersion.Code, fmt.Errorf("unsupported entity type %s", c.EntityType)
		}
		switch c.MatchType {
		case 0:
			if c.Match == nil {
				return nil, kerr.InvalidRequest.Code, errors.New("MATCH_TYPE_EXACT with a null match string")
			}
			wants[c.EntityType] = want{exact: true, name: metadata.QuotaName{Present: true, Name: *c.Match}}
		case 1:
			if c.Match != nil {
				return nil, kerr.InvalidRequest.Code, errors.New("MATCH_TYPE_DEFAULT with a match string")
			}
			wants[c.EntityType] = want{exact: true, name: metadata.QuotaName{Present: true, Default: true}}
		case 2:
			if c.Match != nil {
				return nil, kerr.InvalidRequest.Code, errors.New("MATCH_TYPE_SPECIFIED with a match string")
			}
			wants[c.EntityType] = want{}
		default:
			return nil, kerr.InvalidRequest.Code, fmt.Errorf("unknown match type %d", c.MatchType)
		}
	}
	_, ip := wants[metadata.QuotaIP]
	_, user := wants[metadata.QuotaUser]
	_, client := wants[metadata.QuotaClientID]
	if ip && (user || client) {
		return nil, kerr.InvalidRequest.Code, errors.New("an IP filter component cannot be combined with user or client id components")
	}
	return func(e metadata.QuotaEntity) bool {
		parts := 0
		for _, typ := range metadata.QuotaTypes {
			p := *e.Part(typ)
			if p.Present {
				parts++
			}
			w, ok := wants[typ]
			if ok && (!p.Present || (w.exact && p != w.name)) {
				return false
			}
		}
		return !req.Strict || parts == len(wants)
	}, 0, nil
}
