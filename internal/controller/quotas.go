package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"slices"

	"github.com/gregor-dev/gregor/internal/metadata"
)

// ErrInvalidQuota is an AlterClientQuotas entry Kafka refuses with
// INVALID_REQUEST: an entity of no type or of IP with another type, an IP
// that is not one, a key not defined for the entity's types, a value not
// above zero, or a fraction for an integral key.
var ErrInvalidQuota = errors.New("controller: invalid client quota")

// maxQuotaRecords bounds the records of one AlterClientQuotas, as Kafka's
// MAX_RECORDS_PER_USER_OP: one request is one metadata log entry.
const maxQuotaRecords = 10000

// ErrTooManyQuotaChanges is an AlterClientQuotas over maxQuotaRecords
// changes: POLICY_VIOLATION, as Kafka answers a BoundedListTooLongException.
var ErrTooManyQuotaChanges = errors.New("controller: too many client quota changes in one request")

// QuotaAlteration is one entity's entry of AlterClientQuotas: quota key to
// new value, nil to remove the key.
type QuotaAlteration struct {
	Entity metadata.QuotaEntity
	Ops    map[string]*float64
}

// AlterClientQuotas applies the valid alterations together, as Kafka's
// ClientQuotaControlManager (one atomic batch), and returns each one's
// error (nil: applied, or valid with validateOnly). Unchanged values write
// nothing.
func (c *Controller) AlterClientQuotas(ctx context.Context, alts []QuotaAlteration, validateOnly bool) ([]error, error) {
	errs := make([]error, len(alts))
	err := c.execVisible(ctx, func(img *metadata.Image) ([]metadata.Record, error) {
		var recs []metadata.Record
		for i, a := range alts {
			r, err := quotaRecords(img, a)
			errs[i] = err
			if err == nil {
				recs = append(recs, r...)
			}
		}
		if len(recs) > maxQuotaRecords {
			return nil, fmt.Errorf("%w: %d quota changes in one request, at most %d", ErrTooManyQuotaChanges, len(recs), maxQuotaRecords)
		}
		if validateOnly {
			return nil, nil
		}
		return recs, nil
	})
	return errs, err
}

func quotaRecords(img *metadata.Image, a QuotaAlteration) ([]metadata.Record, error) {
	e := a.Entity
	switch {
	case !e.User.Present && !e.ClientID.Present && !e.IP.Present:
		return nil, fmt.Errorf("%w: empty client quota entity", ErrInvalidQuota)
	case e.IP.Present && (e.User.Present || e.ClientID.Present):
		return nil, fmt.Errorf("%w: an IP entity cannot be combined with a user or client id", ErrInvalidQuota)
	case e.IP.Present && !e.IP.Default && net.ParseIP(e.IP.Name) == nil:
		return nil, fmt.Errorf("%w: %s is not a valid IP", ErrInvalidQuota, e.IP.Name)
	}
	current := img.ClientQuotas[e]
	var recs []metadata.Record
	for _, k := range slices.Sorted(maps.Keys(a.Ops)) {
		v := a.Ops[k]
		if v == nil {
			if _, ok := current[k]; ok {
				recs = append(recs, metadata.ClientQuotaRecord{Entity: e, Key: k, Remove: true})
			}
			continue
		}
		key, ok := metadata.QuotaKeys[k]
		switch {
		case !ok || key.IP != e.IP.Present:
			return nil, fmt.Errorf("%w: invalid configuration key %s for %s", ErrInvalidQuota, k, e)
		case !(*v > 0):
			return nil, fmt.Errorf("%w: quota %s must be greater than 0", ErrInvalidQuota, k)
		case key.Integral && *v > key.Max:
			return nil, fmt.Errorf("%w: %s=%v is too large", ErrInvalidQuota, k, *v)
		case key.Integral && math.Abs(math.Mod(*v, 1)) > 1e-6:
			return nil, fmt.Errorf("%w: %s cannot be a fractional value", ErrInvalidQuota, k)
		}
		if old, ok := current[k]; !ok || old != *v {
			recs = append(recs, metadata.ClientQuotaRecord{Entity: e, Key: k, Value: *v})
		}
	}
	return recs, nil
}
