// kafkajs checks against $BOOTSTRAP. Prints one "PASS|FAIL|SKIP kafkajs: ..."
// line per check. Group checks run only when $INTEROP_GROUPS is "yes".
'use strict'

const crypto = require('crypto')
const { Kafka, CompressionTypes, logLevel } = require('kafkajs')

const CLIENT = 'kafkajs'
const B = process.env.BOOTSTRAP
const GROUPS = process.env.INTEROP_GROUPS === 'yes'
const RUN = crypto.randomBytes(4).toString('hex')
let failures = 0

const report = (status, what) => {
  if (status === 'FAIL') failures++
  console.log(`${status} ${CLIENT}: ${what}`)
}

// kafkajs logs go to stderr (run.sh keeps stderr out of the result lines).
const kafka = new Kafka({
  clientId: 'gregor-interop',
  brokers: [B],
  logLevel: logLevel.WARN,
  logCreator: () => ({ level, log }) => {
    console.error(`kafkajs ${level} ${log.message} ${JSON.stringify(log)}`.slice(0, 600))
  },
  retry: { retries: 3, initialRetryTime: 100 }
})

async function guarded (name, fn) {
  try {
    const msg = await fn()
    if (msg) report('PASS', msg)
  } catch (e) {
    console.error(e && e.stack)
    report('FAIL', `${name}: ${e && e.name}: ${String(e && e.message).slice(0, 300)}`)
  }
}

function assert (cond, msg) {
  if (!cond) throw new Error(msg)
}

// tutorialProducer is the producer program from the Kafka tutorials: keyed
// messages to my_topic, acks all.
async function tutorialProducer () {
  const topic = 'my_topic'
  const producer = kafka.producer()
  await producer.connect()
  let res
  try {
    res = await producer.send({
      topic,
      acks: -1,
      messages: [
        { key: 'key1', value: 'hello world' },
        { key: 'key2', value: 'hey there' },
        { key: 'key3', value: 'bonjour' }
      ]
    })
  } finally {
    await producer.disconnect()
  }
  assert(res.length === 1 && res[0].topicName === topic && res[0].errorCode === 0, `send result ${JSON.stringify(res)}`)
  const admin = kafka.admin()
  await admin.connect()
  try {
    const offs = await admin.fetchTopicOffsets(topic)
    const total = offs.reduce((n, p) => n + Number(p.high) - Number(p.low), 0)
    assert(total >= 3, `fetchTopicOffsets ${JSON.stringify(offs)}: want >= 3 records`)
  } finally {
    await admin.disconnect()
  }
  return 'tutorial producer sent 3 keyed messages to my_topic (acks=-1, auto-created topic), fetchTopicOffsets counts them'
}

async function adminChecks () {
  const topic = `kjs-admin-${RUN}`
  const admin = kafka.admin()
  await admin.connect()
  try {
    const created = await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic, numPartitions: 3, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '86400000' }] }]
    })
    assert(created === true, `createTopics returned ${created}`)
    const again = await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] })
    assert(again === false, `createTopics of an existing topic returned ${again}, want false`)
    const md = await admin.fetchTopicMetadata({ topics: [topic] })
    const t = md.topics.find(x => x.name === topic)
    assert(t && t.partitions.length === 3 && t.partitions.every(p => p.leader === 1 && p.isr.includes(1)),
      `fetchTopicMetadata ${JSON.stringify(md)}`)
    const cfg = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: 2, name: topic }] })
    const entries = cfg.resources[0].configEntries
    const ret = entries.find(e => e.configName === 'retention.ms')
    assert(cfg.resources[0].errorCode === 0 && ret && ret.configValue === '86400000', `describeConfigs ${JSON.stringify(cfg.resources[0]).slice(0, 300)}`)
    const topics = await admin.listTopics()
    assert(topics.includes(topic), 'listTopics lacks the topic')
  } finally {
    await admin.disconnect()
  }
  return 'admin createTopics (3 partitions + config; duplicate -> false), fetchTopicMetadata, describeConfigs, listTopics'
}

async function produceAndCount (name, producerOpts, sendOpts, n) {
  const topic = `kjs-${name}-${RUN}`
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1 }] })
  const producer = kafka.producer(producerOpts)
  await producer.connect()
  const offsets = []
  try {
    for (let b = 0; b < n / 50; b++) {
      const messages = []
      for (let i = b * 50; i < (b + 1) * 50; i++) messages.push({ key: `k${i}`, value: `value-${i}-`.repeat(10), headers: { h: `${i}` } })
      const r = await producer.send({ topic, messages, ...sendOpts })
      offsets.push(Number(r[0].baseOffset))
    }
  } finally {
    await producer.disconnect()
  }
  const offs = await admin.fetchTopicOffsets(topic)
  await admin.disconnect()
  const want = []
  for (let b = 0; b < n / 50; b++) want.push(b * 50)
  assert(JSON.stringify(offsets) === JSON.stringify(want), `batch base offsets ${offsets}, want ${want}`)
  assert(offs.length === 1 && offs[0].high === String(n) && offs[0].low === '0', `offsets ${JSON.stringify(offs)}, want 0..${n}`)
  return topic
}

async function idempotent () {
  await produceAndCount('idem', { idempotent: true, maxInFlightRequests: 1 }, { acks: -1 }, 500)
  return 'idempotent producer (idempotent: true, maxInFlightRequests: 1) wrote 500 records in 10 batches exactly once (base offsets 0,50,..; high watermark 500)'
}

async function gzipRoundTrip () {
  const topic = await produceAndCount('gzip', {}, { compression: CompressionTypes.GZIP }, 200)
  // Read back with a group-less path is not offered by kafkajs; reading goes
  // through the group consumer below when groups exist.
  return `gzip producer wrote 200 records (base offsets and high watermark exact) to ${topic}`
}

async function groupConsumer () {
  if (!GROUPS) {
    report('SKIP', 'consumer in my-group with eachMessage: broker does not advertise the group APIs yet')
    return null
  }
  const topic = `kjs-group-${RUN}`
  const producer = kafka.producer()
  await producer.connect()
  const sent = []
  for (let i = 0; i < 20; i++) sent.push({ key: `k${i}`, value: `v${i}`, headers: { n: `${i}` } })
  await producer.send({ topic, messages: sent.slice(0, 10), compression: CompressionTypes.GZIP })
  await producer.send({ topic, messages: sent.slice(10) })
  await producer.disconnect()
  const consumer = kafka.consumer({ groupId: 'my-group', sessionTimeout: 10000, heartbeatInterval: 500 })
  const got = []
  await consumer.connect()
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    let done
    const finished = new Promise(resolve => { done = resolve })
    await consumer.run({
      eachMessage: async ({ message }) => {
        got.push(`${message.key}=${message.value}@${message.offset}/${message.headers.n}`)
        if (got.length >= 20) done()
      }
    })
    const timeout = new Promise((resolve, reject) => setTimeout(() => reject(new Error(`only ${got.length}/20 messages within 30s`)), 30000))
    await Promise.race([finished, timeout])
  } finally {
    await consumer.disconnect()
  }
  const want = sent.map((m, i) => `k${i}=v${i}@${i}/${i}`)
  assert(JSON.stringify(got) === JSON.stringify(want), `got ${got.slice(0, 5)}...`)
  return 'consumer in my-group (subscribe fromBeginning, eachMessage) reads 20 records (gzip + plain batches) in order with keys, values and headers'
}

// groupRebalance: a second kafkajs consumer joining the group triggers a
// rebalance that splits the topic's partitions between the two members, and
// every message produced afterwards is consumed exactly once by the group.
async function groupRebalance () {
  if (!GROUPS) {
    report('SKIP', 'second consumer rebalances my-group: broker does not advertise the group APIs yet')
    return null
  }
  const topic = `kjs-rebalance-${RUN}`
  const groupId = `my-group-${RUN}`
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: 4 }] })
  await admin.disconnect()

  const assignments = {}
  const got = []
  const start = (name) => {
    const c = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 300, rebalanceTimeout: 10000 })
    c.on(c.events.GROUP_JOIN, e => { assignments[name] = (e.payload.memberAssignment[topic] || []).slice().sort() })
    return c
  }
  const waitFor = async (cond, what) => {
    for (const deadline = Date.now() + 30000; !cond();) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(assignments)}`)
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }
  const a = start('a')
  const b = start('b')
  try {
    await a.connect()
    await a.subscribe({ topics: [topic], fromBeginning: true })
    await a.run({ eachMessage: async ({ message, partition }) => { got.push(`a:${partition}:${message.offset}`) } })
    await waitFor(() => (assignments.a || []).length === 4, 'consumer a to own all 4 partitions')

    await b.connect()
    await b.subscribe({ topics: [topic], fromBeginning: true })
    await b.run({ eachMessage: async ({ message, partition }) => { got.push(`b:${partition}:${message.offset}`) } })
    await waitFor(() => (assignments.b || []).length > 0 && (assignments.a || []).length > 0 &&
      assignments.a.length + assignments.b.length === 4, 'the rebalance to split the partitions')
    const union = new Set([...assignments.a, ...assignments.b])
    assert(union.size === 4, `partitions not split disjointly: ${JSON.stringify(assignments)}`)

    const producer = kafka.producer()
    await producer.connect()
    const messages = []
    for (let i = 0; i < 40; i++) messages.push({ key: `key-${i}`, value: `v${i}` })
    await producer.send({ topic, messages })
    await producer.disconnect()
    await waitFor(() => got.length >= 40, '40 messages')
    await new Promise(resolve => setTimeout(resolve, 500)) // a duplicate would arrive now
  } finally {
    await Promise.all([a.disconnect(), b.disconnect()])
  }
  const seen = new Set(got.map(g => g.slice(2)))
  assert(got.length === 40 && seen.size === 40, `consumed ${got.length} messages, ${seen.size} distinct`)
  const byA = got.filter(g => g.startsWith('a:')).length
  assert(byA > 0 && byA < 40, `one member consumed everything (a: ${byA})`)
  return `second consumer joining ${groupId} triggers a rebalance: partitions split ${JSON.stringify(assignments.a)} / ${JSON.stringify(assignments.b)}, 40 messages consumed exactly once (a ${byA}, b ${40 - byA})`
}

// transactions: a transactional producer (transactionalId, idempotent,
// maxInFlightRequests 1) commits one transaction that also sends a group's
// offsets and aborts another; a read_committed consumer (readUncommitted:
// false) sees exactly the committed records and the group offset is the one
// the transaction sent.
async function transactions () {
  if (!GROUPS) {
    report('SKIP', 'transactional producer: broker does not advertise the group APIs yet')
    return null
  }
  const topic = `kjs-tx-${RUN}`
  const offsetsGroup = `kjs-txoffsets-${RUN}`
  const admin = kafka.admin()
  await admin.connect()
  try {
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1 }] })
    const producer = kafka.producer({ transactionalId: `kjs-txid-${RUN}`, idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    try {
      const committed = await producer.transaction()
      await committed.send({ topic, messages: [0, 1, 2, 3, 4].map(i => ({ key: `k${i}`, value: `commit-${i}` })) })
      await committed.sendOffsets({ consumerGroupId: offsetsGroup, topics: [{ topic, partitions: [{ partition: 0, offset: '3' }] }] })
      await committed.commit()
      const aborted = await producer.transaction()
      await aborted.send({ topic, messages: [0, 1, 2].map(i => ({ key: `a${i}`, value: `abort-${i}` })) })
      await aborted.abort()
      const last = await producer.transaction()
      await last.send({ topic, messages: [{ key: 'k5', value: 'commit-5' }] })
      await last.commit()
    } finally {
      await producer.disconnect()
    }
    const fetched = await admin.fetchOffsets({ groupId: offsetsGroup, topics: [topic] })
    const p0 = fetched[0].partitions.find(p => p.partition === 0)
    assert(p0 && p0.offset === '3', `group offset after sendOffsets+commit: ${JSON.stringify(fetched)}, want 3`)

    const consumer = kafka.consumer({ groupId: `kjs-txread-${RUN}`, readUncommitted: false, sessionTimeout: 10000, heartbeatInterval: 500 })
    const got = []
    await consumer.connect()
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true })
      await consumer.run({ eachMessage: async ({ message }) => { got.push(`${message.value}@${message.offset}`) } })
      for (const deadline = Date.now() + 20000; got.length < 6;) {
        if (Date.now() > deadline) throw new Error(`read_committed consumer got ${JSON.stringify(got)} within 20s, want 6 records`)
        await new Promise(resolve => setTimeout(resolve, 50))
      }
      await new Promise(resolve => setTimeout(resolve, 1000)) // an aborted record would arrive now
    } finally {
      await consumer.disconnect()
    }
    // Offsets: 0-4 committed, 5 its marker, 6-8 aborted, 9 the abort marker, 10 the last commit.
    const want = ['commit-0@0', 'commit-1@1', 'commit-2@2', 'commit-3@3', 'commit-4@4', 'commit-5@10']
    assert(JSON.stringify(got) === JSON.stringify(want), `read_committed consumer got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`)
  } finally {
    await admin.disconnect()
  }
  return 'transactional producer (transactionalId, idempotent, maxInFlightRequests 1): transaction() + send + sendOffsets + commit, one abort, another commit; read_committed consumer reads exactly the 6 committed records (offsets 0-4, 10), group offset 3 from sendOffsets'
}

async function main () {
  if (!B) throw new Error('BOOTSTRAP must be set')
  await guarded('tutorial producer', tutorialProducer)
  await guarded('admin', adminChecks)
  await guarded('idempotent producer', idempotent)
  await guarded('gzip', gzipRoundTrip)
  await guarded('group consumer', groupConsumer)
  await guarded('group rebalance', groupRebalance)
  await guarded('transactions', transactions)
}

main().then(() => process.exit(failures ? 1 : 0), e => { console.error(e); process.exit(2) })
