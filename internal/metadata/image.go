package metadata

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// Apply errors. They mean the record does not fit the image it was applied
// to; the image is left unchanged.
var (
	ErrTopicExists          = errors.New("metadata: topic already exists")
	ErrUnknownTopic         = errors.New("metadata: unknown topic")
	ErrUnknownPartition     = errors.New("metadata: unknown partition")
	ErrInvalidPartition     = errors.New("metadata: invalid partition")
	ErrUnknownBroker        = errors.New("metadata: unknown broker")
	ErrStaleBrokerEpoch     = errors.New("metadata: stale broker epoch")
	ErrInvalidRecord        = errors.New("metadata: invalid record")
	ErrInvalidResource      = errors.New("metadata: invalid config resource")
	ErrProducerIDsNotRaised = errors.New("metadata: producer id block does not move forward")
	ErrClusterIDSet         = errors.New("metadata: cluster id already set")
)

// Broker is a registered broker.
type Broker struct {
	NodeID int32
	Host   string
	Port   int32
	Rack   string
	Epoch  int64
	Fenced bool
	// Listeners are the broker's client listeners by name, when it has
	// more than one or its one is not PLAINTEXT; nil means Host:Port alone.
	Listeners []Endpoint
}

// DefaultListener is the name of a broker's listener when it registered
// no names.
const DefaultListener = "PLAINTEXT"

// Endpoint is one named listener of a broker.
type Endpoint struct {
	Name string
	Host string
	Port int32
}

// Endpoint is where a client of listener name reaches b: the endpoint of
// that name, as Kafka answers each listener with its own (ok false if b has
// no such listener, and Kafka leaves b out). A broker registered without
// listeners has the one PLAINTEXT listener at Host:Port; a name of "" (a
// caller that does not know its listener) gets Host:Port.
func (b Broker) Endpoint(name string) (host string, port int32, ok bool) {
	if name == "" {
		return b.Host, b.Port, true
	}
	if b.Listeners == nil {
		return b.Host, b.Port, name == DefaultListener
	}
	for _, l := range b.Listeners {
		if l.Name == name {
			return l.Host, l.Port, true
		}
	}
	return "", 0, false
}

// Topic is a topic and its partitions. Partitions is indexed by partition id.
type Topic struct {
	Name       string
	ID         [16]byte
	Partitions []Partition
	Configs    map[string]string
}

// Partition is the replica set and leadership of one partition.
type Partition struct {
	Partition      int32
	Leader         int32
	LeaderEpoch    int32
	PartitionEpoch int32
	Replicas       []int32
	ISR            []int32
	// AddingReplicas and RemovingReplicas are set while a reassignment is
	// in progress (KRaft's fields): Replicas is then the target replicas
	// followed by RemovingReplicas; AddingReplicas are the targets that
	// were not replicas before. Both nil otherwise.
	AddingReplicas   []int32
	RemovingReplicas []int32
}

// Reassigning reports whether a reassignment of p is in progress.
func (p Partition) Reassigning() bool {
	return len(p.AddingReplicas) > 0 || len(p.RemovingReplicas) > 0
}

// Image is an immutable snapshot of the cluster metadata. Nothing reachable
// from an Image may be modified; build new images with Apply or ApplyBatch.
// The zero Image is a valid empty image.
type Image struct {
	ClusterID  string
	Brokers    map[int32]Broker
	Topics     map[string]*Topic
	TopicsByID map[[16]byte]*Topic
	// BrokerConfigs maps a broker resource name ("" = cluster default, or
	// the broker id in decimal) to its dynamic configs.
	BrokerConfigs map[string]map[string]string
	// GroupConfigs maps a group id to its configs (consumer.session.timeout.ms,
	// ...); a group without any is absent.
	GroupConfigs   map[string]map[string]string
	NextProducerID int64
	// ClientQuotas holds the client quotas (AlterClientQuotas) by entity:
	// quota key (producer_byte_rate, ...) to value.
	ClientQuotas map[QuotaEntity]map[string]float64
	// ScramCredentials holds the users' SCRAM credentials
	// (AlterUserScramCredentials), one per user and mechanism.
	ScramCredentials map[ScramKey]ScramCredential
	// ACLs holds the access control entries (CreateAcls) by id.
	ACLs map[[16]byte]ACL
	// LastOffset is the Raft index of the last applied log entry.
	LastOffset uint64
}

// Topic returns the topic called name, or nil.
func (img *Image) Topic(name string) *Topic { return img.Topics[name] }

// TopicByID returns the topic with the given id, or nil.
func (img *Image) TopicByID(id [16]byte) *Topic { return img.TopicsByID[id] }

// Partition returns partition p of the topic with the given id.
func (img *Image) Partition(topicID [16]byte, p int32) (Partition, bool) {
	t := img.TopicsByID[topicID]
	if t == nil || p < 0 || int(p) >= len(t.Partitions) {
		return Partition{}, false
	}
	return t.Partitions[p], true
}

// UnfencedBrokers returns the ids of the registered, unfenced brokers in
// ascending order.
func (img *Image) UnfencedBrokers() []int32 {
	var ids []int32
	for id, b := range img.Brokers {
		if !b.Fenced {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// BrokerConfig returns the dynamic value of key for broker id: the broker's
// own value, else the cluster default.
func (img *Image) BrokerConfig(id int32, key string) (string, bool) {
	if v, ok := img.BrokerConfigs[strconv.Itoa(int(id))][key]; ok {
		return v, true
	}
	v, ok := img.BrokerConfigs[""][key]
	return v, ok
}

// Apply returns a new image with rec applied. img is not modified.
// LastOffset is carried over unchanged.
func (img *Image) Apply(rec Record) (*Image, error) {
	b := newBuilder(img)
	if err := b.apply(rec); err != nil {
		return nil, err
	}
	return b.img, nil
}

// ApplyBatch applies recs in order, all or nothing, and returns the new image
// with LastOffset set to offset. On error img is returned unchanged along
// with the error of the first record that failed.
func (img *Image) ApplyBatch(recs []Record, offset uint64) (*Image, error) {
	b := newBuilder(img)
	for i, rec := range recs {
		if err := b.apply(rec); err != nil {
			return img, fmt.Errorf("record %d (type %d): %w", i, rec.Type(), err)
		}
	}
	b.img.LastOffset = offset
	return b.img, nil
}

// builder makes one new image from a base, copying each map and topic at
// most once (the first time it changes), so a batch of many records costs
// one copy per touched object rather than one per record.
type builder struct {
	img                                          *Image
	ownBrokers, ownTopics, ownByID, ownBrokerCfg bool
	ownTopic                                     map[[16]byte]bool
	ownTopicCfg                                  map[[16]byte]bool
	ownBrokerCfgMap                              map[string]bool
	ownQuotas                                    bool
	ownQuotaMap                                  map[QuotaEntity]bool
	ownScram                                     bool
	ownACLs                                      bool
}

func newBuilder(base *Image) *builder {
	img := *base
	return &builder{img: &img}
}

func cloneMap[M ~map[K]V, K comparable, V any](m M) M {
	if m == nil {
		return make(M)
	}
	return maps.Clone(m)
}

func (b *builder) brokers() map[int32]Broker {
	if !b.ownBrokers {
		b.img.Brokers = cloneMap(b.img.Brokers)
		b.ownBrokers = true
	}
	return b.img.Brokers
}

func (b *builder) topicMaps() (map[string]*Topic, map[[16]byte]*Topic) {
	if !b.ownTopics {
		b.img.Topics = cloneMap(b.img.Topics)
		b.ownTopics = true
	}
	if !b.ownByID {
		b.img.TopicsByID = cloneMap(b.img.TopicsByID)
		b.ownByID = true
	}
	return b.img.Topics, b.img.TopicsByID
}

// mutableTopic returns a copy of t owned by this builder, installed in both
// topic maps. Its Partitions slice is a fresh copy; the slices inside each
// Partition are still shared and must be replaced, not written.
func (b *builder) mutableTopic(t *Topic) *Topic {
	if b.ownTopic[t.ID] {
		return t
	}
	cp := *t
	cp.Partitions = slices.Clone(t.Partitions)
	byName, byID := b.topicMaps()
	byName[cp.Name] = &cp
	byID[cp.ID] = &cp
	if b.ownTopic == nil {
		b.ownTopic = make(map[[16]byte]bool)
	}
	b.ownTopic[cp.ID] = true
	return &cp
}

func (b *builder) apply(rec Record) error {
	switch r := rec.(type) {
	case RegisterBrokerRecord:
		return b.registerBroker(r)
	case FenceBrokerRecord:
		return b.setFenced(r.NodeID, r.Epoch, true)
	case UnfenceBrokerRecord:
		return b.setFenced(r.NodeID, r.Epoch, false)
	case TopicRecord:
		return b.addTopic(r)
	case PartitionRecord:
		return b.setPartition(r)
	case PartitionChangeRecord:
		return b.changePartition(r)
	case RemoveTopicRecord:
		return b.removeTopic(r)
	case ConfigRecord:
		return b.setConfig(r)
	case ClientQuotaRecord:
		return b.setClientQuota(r)
	case UserScramCredentialRecord:
		return b.setScramCredential(r)
	case RemoveUserScramCredentialRecord:
		return b.removeScramCredential(r)
	case AccessControlEntryRecord:
		return b.addACL(r)
	case RemoveAccessControlEntryRecord:
		return b.removeACL(r)
	case ProducerIDsRecord:
		if r.NextProducerID <= b.img.NextProducerID {
			return fmt.Errorf("%w: next %d, current %d", ErrProducerIDsNotRaised, r.NextProducerID, b.img.NextProducerID)
		}
		b.img.NextProducerID = r.NextProducerID
		return nil
	case UnregisterBrokerRecord:
		br, ok := b.img.Brokers[r.NodeID]
		if !ok {
			return fmt.Errorf("%w: %d", ErrUnknownBroker, r.NodeID)
		}
		if br.Epoch != r.Epoch {
			return fmt.Errorf("%w: broker %d epoch %d, registered with %d", ErrStaleBrokerEpoch, r.NodeID, r.Epoch, br.Epoch)
		}
		delete(b.brokers(), r.NodeID)
		return nil
	case ClusterRecord:
		if r.ClusterID == "" {
			return fmt.Errorf("%w: empty cluster id", ErrInvalidRecord)
		}
		if b.img.ClusterID != "" && b.img.ClusterID != r.ClusterID {
			return fmt.Errorf("%w: %q", ErrClusterIDSet, b.img.ClusterID)
		}
		b.img.ClusterID = r.ClusterID
		return nil
	case nil:
		return fmt.Errorf("%w: nil record", ErrInvalidRecord)
	default:
		return fmt.Errorf("%w: record type %T", ErrInvalidRecord, rec)
	}
}

func (b *builder) registerBroker(r RegisterBrokerRecord) error {
	if r.NodeID < 0 {
		return fmt.Errorf("%w: broker id %d", ErrInvalidRecord, r.NodeID)
	}
	if old, ok := b.img.Brokers[r.NodeID]; ok && r.Epoch <= old.Epoch {
		return fmt.Errorf("%w: broker %d epoch %d, registered with %d", ErrStaleBrokerEpoch, r.NodeID, r.Epoch, old.Epoch)
	}
	b.brokers()[r.NodeID] = Broker{NodeID: r.NodeID, Host: r.Host, Port: r.Port, Rack: r.Rack, Epoch: r.Epoch, Fenced: r.Fenced, Listeners: r.Listeners}
	return nil
}

func (b *builder) setFenced(id int32, epoch int64, fenced bool) error {
	br, ok := b.img.Brokers[id]
	if !ok {
		return fmt.Errorf("%w: %d", ErrUnknownBroker, id)
	}
	if br.Epoch != epoch {
		return fmt.Errorf("%w: broker %d epoch %d, registered with %d", ErrStaleBrokerEpoch, id, epoch, br.Epoch)
	}
	br.Fenced = fenced
	b.brokers()[id] = br
	return nil
}

func (b *builder) addTopic(r TopicRecord) error {
	if r.Name == "" || r.ID == ([16]byte{}) {
		return fmt.Errorf("%w: topic needs a name and a non-zero id", ErrInvalidRecord)
	}
	if _, ok := b.img.Topics[r.Name]; ok {
		return fmt.Errorf("%w: %q", ErrTopicExists, r.Name)
	}
	if _, ok := b.img.TopicsByID[r.ID]; ok {
		return fmt.Errorf("%w: topic id %x in use", ErrTopicExists, r.ID)
	}
	t := &Topic{Name: r.Name, ID: r.ID}
	byName, byID := b.topicMaps()
	byName[t.Name] = t
	byID[t.ID] = t
	if b.ownTopic == nil {
		b.ownTopic = make(map[[16]byte]bool)
	}
	b.ownTopic[t.ID] = true
	return nil
}

// checkReplicas validates a replica set, its ISR and leader.
func checkReplicas(replicas, isr []int32, leader int32) error {
	if len(replicas) == 0 {
		return fmt.Errorf("%w: empty replica set", ErrInvalidRecord)
	}
	for i, r := range replicas {
		if r < 0 || slices.Contains(replicas[:i], r) {
			return fmt.Errorf("%w: replicas %v", ErrInvalidRecord, replicas)
		}
	}
	for i, r := range isr {
		if !slices.Contains(replicas, r) || slices.Contains(isr[:i], r) {
			return fmt.Errorf("%w: isr %v not a subset of replicas %v", ErrInvalidRecord, isr, replicas)
		}
	}
	if leader != NoLeader && !slices.Contains(isr, leader) {
		return fmt.Errorf("%w: leader %d not in isr %v", ErrInvalidRecord, leader, isr)
	}
	return nil
}

// checkReassignment validates the adding and removing replicas of a
// partition: disjoint sets of its replicas.
func checkReassignment(replicas, adding, removing []int32) error {
	for _, set := range [][]int32{adding, removing} {
		for i, r := range set {
			if !slices.Contains(replicas, r) || slices.Contains(set[:i], r) {
				return fmt.Errorf("%w: adding %v / removing %v not sets of replicas %v", ErrInvalidRecord, adding, removing, replicas)
			}
		}
	}
	for _, r := range adding {
		if slices.Contains(removing, r) {
			return fmt.Errorf("%w: replica %d both added and removed", ErrInvalidRecord, r)
		}
	}
	return nil
}

// nilIfEmpty keeps "no reassignment" one value (nil) in images.
func nilIfEmpty(s []int32) []int32 {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

func (b *builder) setPartition(r PartitionRecord) error {
	t := b.img.TopicsByID[r.TopicID]
	if t == nil {
		return fmt.Errorf("%w: id %x", ErrUnknownTopic, r.TopicID)
	}
	if r.Partition < 0 || int(r.Partition) > len(t.Partitions) {
		return fmt.Errorf("%w: partition %d of %q with %d partitions", ErrInvalidPartition, r.Partition, t.Name, len(t.Partitions))
	}
	if err := checkReplicas(r.Replicas, r.ISR, r.Leader); err != nil {
		return err
	}
	if err := checkReassignment(r.Replicas, r.AddingReplicas, r.RemovingReplicas); err != nil {
		return err
	}
	p := Partition{
		Partition: r.Partition, Leader: r.Leader, LeaderEpoch: r.LeaderEpoch, PartitionEpoch: r.PartitionEpoch,
		Replicas: slices.Clone(r.Replicas), ISR: slices.Clone(r.ISR),
		AddingReplicas: nilIfEmpty(r.AddingReplicas), RemovingReplicas: nilIfEmpty(r.RemovingReplicas),
	}
	if p.ISR == nil {
		p.ISR = []int32{}
	}
	t = b.mutableTopic(t)
	if int(r.Partition) == len(t.Partitions) {
		t.Partitions = append(t.Partitions, p)
	} else {
		t.Partitions[r.Partition] = p
	}
	return nil
}

func (b *builder) changePartition(r PartitionChangeRecord) error {
	t := b.img.TopicsByID[r.TopicID]
	if t == nil {
		return fmt.Errorf("%w: id %x", ErrUnknownTopic, r.TopicID)
	}
	if r.Partition < 0 || int(r.Partition) >= len(t.Partitions) {
		return fmt.Errorf("%w: partition %d of %q", ErrUnknownPartition, r.Partition, t.Name)
	}
	p := t.Partitions[r.Partition]
	bump := false
	if r.Replicas != nil {
		for _, id := range p.Replicas {
			bump = bump || !slices.Contains(r.Replicas, id)
		}
		p.Replicas = slices.Clone(r.Replicas)
	}
	if r.ISR != nil {
		p.ISR = slices.Clone(r.ISR)
	}
	if r.AddingReplicas != nil {
		p.AddingReplicas = nilIfEmpty(r.AddingReplicas)
	}
	if r.RemovingReplicas != nil {
		p.RemovingReplicas = nilIfEmpty(r.RemovingReplicas)
	}
	if r.Leader != nil && *r.Leader != p.Leader {
		p.Leader = *r.Leader
		bump = true
	}
	if bump {
		p.LeaderEpoch++
	}
	if err := checkReplicas(p.Replicas, p.ISR, p.Leader); err != nil {
		return err
	}
	if err := checkReassignment(p.Replicas, p.AddingReplicas, p.RemovingReplicas); err != nil {
		return err
	}
	p.PartitionEpoch++
	t = b.mutableTopic(t)
	t.Partitions[r.Partition] = p
	return nil
}

func (b *builder) removeTopic(r RemoveTopicRecord) error {
	t := b.img.TopicsByID[r.TopicID]
	if t == nil {
		return fmt.Errorf("%w: id %x", ErrUnknownTopic, r.TopicID)
	}
	byName, byID := b.topicMaps()
	delete(byName, t.Name)
	delete(byID, t.ID)
	delete(b.ownTopic, t.ID)
	delete(b.ownTopicCfg, t.ID)
	return nil
}

func (b *builder) setConfig(r ConfigRecord) error {
	if r.Name == "" {
		return fmt.Errorf("%w: empty config name", ErrInvalidRecord)
	}
	switch r.ResourceType {
	case ResourceTopic:
		t := b.img.Topics[r.ResourceName]
		if t == nil {
			return fmt.Errorf("%w: %q", ErrUnknownTopic, r.ResourceName)
		}
		t = b.mutableTopic(t)
		if !b.ownTopicCfg[t.ID] {
			t.Configs = cloneMap(t.Configs)
			if b.ownTopicCfg == nil {
				b.ownTopicCfg = make(map[[16]byte]bool)
			}
			b.ownTopicCfg[t.ID] = true
		}
		setOrDelete(t.Configs, r.Name, r.Value)
		return nil
	case ResourceBroker:
		if r.ResourceName != "" {
			if id, err := strconv.ParseInt(r.ResourceName, 10, 32); err != nil || id < 0 {
				return fmt.Errorf("%w: broker resource name %q", ErrInvalidResource, r.ResourceName)
			}
		}
		if !b.ownBrokerCfg {
			b.img.BrokerConfigs = cloneMap(b.img.BrokerConfigs)
			b.ownBrokerCfg = true
		}
		if !b.ownBrokerCfgMap[r.ResourceName] {
			b.img.BrokerConfigs[r.ResourceName] = cloneMap(b.img.BrokerConfigs[r.ResourceName])
			if b.ownBrokerCfgMap == nil {
				b.ownBrokerCfgMap = make(map[string]bool)
			}
			b.ownBrokerCfgMap[r.ResourceName] = true
		}
		m := b.img.BrokerConfigs[r.ResourceName]
		setOrDelete(m, r.Name, r.Value)
		if len(m) == 0 {
			delete(b.img.BrokerConfigs, r.ResourceName)
			delete(b.ownBrokerCfgMap, r.ResourceName)
		}
		return nil
	case ResourceGroup:
		if r.ResourceName == "" {
			return fmt.Errorf("%w: empty group name", ErrInvalidResource)
		}
		// Group configs change rarely: copy on every record.
		all := cloneMap(b.img.GroupConfigs)
		m := cloneMap(all[r.ResourceName])
		setOrDelete(m, r.Name, r.Value)
		if len(m) == 0 {
			delete(all, r.ResourceName)
		} else {
			all[r.ResourceName] = m
		}
		b.img.GroupConfigs = all
		return nil
	default:
		return fmt.Errorf("%w: resource type %d", ErrInvalidResource, r.ResourceType)
	}
}

func setOrDelete(m map[string]string, k string, v *string) {
	if v == nil {
		delete(m, k)
		return
	}
	m[k] = *v
}

// Records returns records that rebuild img when applied, in order, to an
// empty image. The order is deterministic.
func (img *Image) Records() []Record {
	var recs []Record
	if img.ClusterID != "" {
		recs = append(recs, ClusterRecord{ClusterID: img.ClusterID})
	}
	for _, id := range slices.Sorted(maps.Keys(img.Brokers)) {
		br := img.Brokers[id]
		recs = append(recs, RegisterBrokerRecord{NodeID: br.NodeID, Host: br.Host, Port: br.Port, Rack: br.Rack, Epoch: br.Epoch, Fenced: br.Fenced, Listeners: br.Listeners})
	}
	topics := slices.SortedFunc(maps.Values(img.Topics), func(a, b *Topic) int { return cmp.Compare(a.Name, b.Name) })
	for _, t := range topics {
		recs = append(recs, TopicRecord{Name: t.Name, ID: t.ID})
		for _, p := range t.Partitions {
			recs = append(recs, PartitionRecord{
				TopicID: t.ID, Partition: p.Partition, Replicas: p.Replicas, ISR: p.ISR,
				Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch,
				AddingReplicas: p.AddingReplicas, RemovingReplicas: p.RemovingReplicas,
			})
		}
		for _, k := range slices.Sorted(maps.Keys(t.Configs)) {
			v := t.Configs[k]
			recs = append(recs, ConfigRecord{ResourceType: ResourceTopic, ResourceName: t.Name, Name: k, Value: &v})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(img.BrokerConfigs)) {
		cfg := img.BrokerConfigs[name]
		for _, k := range slices.Sorted(maps.Keys(cfg)) {
			v := cfg[k]
			recs = append(recs, ConfigRecord{ResourceType: ResourceBroker, ResourceName: name, Name: k, Value: &v})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(img.GroupConfigs)) {
		cfg := img.GroupConfigs[name]
		for _, k := range slices.Sorted(maps.Keys(cfg)) {
			v := cfg[k]
			recs = append(recs, ConfigRecord{ResourceType: ResourceGroup, ResourceName: name, Name: k, Value: &v})
		}
	}
	recs = append(recs, img.quotaRecords()...)
	recs = append(recs, img.scramRecords()...)
	recs = append(recs, img.aclRecords()...)
	if img.NextProducerID > 0 {
		recs = append(recs, ProducerIDsRecord{BrokerID: -1, NextProducerID: img.NextProducerID})
	}
	return recs
}

// imageMagic starts an encoded image.
const imageMagic = "GMI"

// imageVersion is the only encoded image version written and read.
const imageVersion = 0

// Encode returns img in the snapshot format described in the package doc.
func (img *Image) Encode() []byte {
	b := append([]byte(imageMagic), imageVersion)
	b = appendInt64(b, int64(img.LastOffset))
	return append(b, EncodeBatch(img.Records())...)
}

// DecodeImage decodes an image written by Image.Encode.
func DecodeImage(b []byte) (*Image, error) {
	r := reader{b: b}
	if string(r.take(len(imageMagic))) != imageMagic {
		return nil, fmt.Errorf("%w: not an image", ErrCorrupt)
	}
	if v := r.int8(); v != imageVersion {
		return nil, fmt.Errorf("%w: image version %d", ErrUnknownVersion, v)
	}
	offset := r.uint64()
	if r.err != nil {
		return nil, r.err
	}
	recs, err := DecodeBatch(r.b)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	img, err := (&Image{}).ApplyBatch(recs, offset)
	if err != nil {
		return nil, fmt.Errorf("%w: image records: %w", ErrCorrupt, err)
	}
	return img, nil
}
