package metadata

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
)

// QuotaName is one part of a client quota entity: absent, the default for
// its type (Kafka's <default>, a null name on the wire), or a name.
type QuotaName struct {
	Present bool
	Default bool
	Name    string
}

// Quota entity types, named as on the wire.
const (
	QuotaUser     = "user"
	QuotaClientID = "client-id"
	QuotaIP       = "ip"
)

// QuotaEntity names what a client quota applies to, as Kafka's
// ClientQuotaEntity: a user, a client id, both, or an IP address. It is
// comparable, so it keys the image's quotas.
type QuotaEntity struct {
	User, ClientID, IP QuotaName
}

// QuotaTypes are the entity types in Kafka's order.
var QuotaTypes = []string{QuotaUser, QuotaClientID, QuotaIP}

// Part is e's part of entity type typ, nil if typ is not one.
func (e *QuotaEntity) Part(typ string) *QuotaName {
	switch typ {
	case QuotaUser:
		return &e.User
	case QuotaClientID:
		return &e.ClientID
	case QuotaIP:
		return &e.IP
	}
	return nil
}

// String is Kafka's form of the entity, for messages.
func (e QuotaEntity) String() string {
	s := ""
	for _, typ := range QuotaTypes {
		n := *e.Part(typ)
		if !n.Present {
			continue
		}
		if s != "" {
			s += ", "
		}
		name := n.Name
		if n.Default {
			name = "<default>"
		}
		s += typ + "=" + name
	}
	return "{" + s + "}"
}

// CompareQuotaEntity orders entities for deterministic snapshots.
func CompareQuotaEntity(a, b QuotaEntity) int {
	part := func(x QuotaName) string {
		switch {
		case !x.Present:
			return "0"
		case x.Default:
			return "1"
		}
		return "2" + x.Name
	}
	return cmp.Or(cmp.Compare(part(a.User), part(b.User)), cmp.Compare(part(a.ClientID), part(b.ClientID)),
		cmp.Compare(part(a.IP), part(b.IP)))
}

// ClientQuotaRecord sets (Remove false) or removes one quota key of an
// entity, as Kafka's ClientQuotaRecord.
type ClientQuotaRecord struct {
	Entity QuotaEntity
	Key    string
	Value  float64
	Remove bool
}

// TypeClientQuota is a ClientQuotaRecord.
const TypeClientQuota RecordType = 12

// Type implements Record.
func (ClientQuotaRecord) Type() RecordType { return TypeClientQuota }

func appendQuotaName(b []byte, n QuotaName) []byte {
	switch {
	case !n.Present:
		return append(b, 0)
	case n.Default:
		return append(b, 1)
	}
	return appendString(append(b, 2), n.Name)
}

func (r ClientQuotaRecord) appendFields(b []byte) []byte {
	b = appendQuotaName(b, r.Entity.User)
	b = appendQuotaName(b, r.Entity.ClientID)
	b = appendQuotaName(b, r.Entity.IP)
	b = appendString(b, r.Key)
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(r.Value))
	return appendBool(b, r.Remove)
}

func (r *reader) quotaName() QuotaName {
	switch r.int8() {
	case 0:
		return QuotaName{}
	case 1:
		return QuotaName{Present: true, Default: true}
	case 2:
		return QuotaName{Present: true, Name: r.string()}
	}
	if r.err == nil {
		r.err = fmt.Errorf("%w: quota entity part", ErrCorrupt)
	}
	return QuotaName{}
}

func decodeClientQuota(r *reader) ClientQuotaRecord {
	var rec ClientQuotaRecord
	rec.Entity.User, rec.Entity.ClientID, rec.Entity.IP = r.quotaName(), r.quotaName(), r.quotaName()
	rec.Key = r.string()
	rec.Value = math.Float64frombits(r.uint64())
	rec.Remove = r.bool()
	if math.IsNaN(rec.Value) && r.err == nil {
		// The controller writes no NaN (a quota is above zero), and a NaN
		// would not equal itself once decoded.
		r.err = fmt.Errorf("%w: client quota value NaN", ErrCorrupt)
	}
	return rec
}

func (b *builder) setClientQuota(r ClientQuotaRecord) error {
	e := r.Entity
	if !e.User.Present && !e.ClientID.Present && !e.IP.Present {
		return fmt.Errorf("%w: empty client quota entity", ErrInvalidRecord)
	}
	if r.Key == "" || (!r.Remove && !(r.Value > 0)) {
		return fmt.Errorf("%w: client quota %s=%v", ErrInvalidRecord, r.Key, r.Value)
	}
	if !b.ownQuotas {
		b.img.ClientQuotas = cloneMap(b.img.ClientQuotas)
		b.ownQuotas = true
	}
	if !b.ownQuotaMap[e] {
		b.img.ClientQuotas[e] = cloneMap(b.img.ClientQuotas[e])
		if b.ownQuotaMap == nil {
			b.ownQuotaMap = make(map[QuotaEntity]bool)
		}
		b.ownQuotaMap[e] = true
	}
	m := b.img.ClientQuotas[e]
	if r.Remove {
		delete(m, r.Key)
	} else {
		m[r.Key] = r.Value
	}
	if len(m) == 0 {
		delete(b.img.ClientQuotas, e)
		delete(b.ownQuotaMap, e)
	}
	return nil
}

// quotaRecords are the records that rebuild the image's client quotas.
func (img *Image) quotaRecords() []Record {
	var recs []Record
	for _, e := range slices.SortedFunc(maps.Keys(img.ClientQuotas), CompareQuotaEntity) {
		q := img.ClientQuotas[e]
		for _, k := range slices.Sorted(maps.Keys(q)) {
			recs = append(recs, ClientQuotaRecord{Entity: e, Key: k, Value: q[k]})
		}
	}
	return recs
}

// QuotaKey describes one client quota key, as Kafka's QuotaConfig.
type QuotaKey struct {
	// Integral keys take whole numbers only (Kafka's LONG and INT keys).
	Integral bool
	// IP keys apply to IP entities; the others to users and client ids.
	IP bool
	// Max bounds an integral key (Kafka's LONG or INT range).
	Max float64
}

// Client quota keys.
const (
	QuotaProducerByteRate       = "producer_byte_rate"
	QuotaConsumerByteRate       = "consumer_byte_rate"
	QuotaRequestPercentage      = "request_percentage"
	QuotaControllerMutationRate = "controller_mutation_rate"
	QuotaConnectionCreationRate = "connection_creation_rate"
)

// QuotaKeys is the one table of the client quota keys Kafka defines.
var QuotaKeys = map[string]QuotaKey{
	QuotaProducerByteRate:       {Integral: true, Max: math.MaxInt64},
	QuotaConsumerByteRate:       {Integral: true, Max: math.MaxInt64},
	QuotaRequestPercentage:      {},
	QuotaControllerMutationRate: {},
	QuotaConnectionCreationRate: {Integral: true, IP: true, Max: math.MaxInt32},
}
