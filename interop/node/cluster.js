// kafkajs in the cluster phase of run.sh: an idempotent acks=all producer
// writes to an RF=3 topic on three nodes while $INTEROP_FAULT kills the
// leader of partition 0 with kill -9; every acknowledged record must be read
// back exactly once at its acknowledged offset.
'use strict'

const crypto = require('crypto')
const { execSync } = require('child_process')
const { Kafka, logLevel } = require('kafkajs')

const CLIENT = 'kafkajs'
const RUN = crypto.randomBytes(4).toString('hex')
const kafka = new Kafka({
  clientId: 'gregor-interop-cluster',
  brokers: process.env.BOOTSTRAP.split(','),
  logLevel: logLevel.NOTHING,
  retry: { retries: 30, initialRetryTime: 200, maxRetryTime: 2000 }
})

async function leaderOf (admin, topic, partition) {
  for (let i = 0; i < 150; i++) {
    const md = await admin.fetchTopicMetadata({ topics: [topic] })
    const p = md.topics[0].partitions.find(p => p.partitionId === partition)
    if (p && p.leader >= 0) return p.leader
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  throw new Error(`no leader for ${topic}-${partition}`)
}

async function main () {
  const topic = `interop-cluster-kafkajs-${RUN}`
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({
    waitForLeaders: true,
    topics: [{ topic, numPartitions: 3, replicationFactor: 3, configEntries: [{ name: 'min.insync.replicas', value: '2' }] }]
  })
  const leader = await leaderOf(admin, topic, 0)
  await admin.disconnect()

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const total = 3000
  const chunk = 100
  const acked = new Map() // value -> "partition/offset"
  let killedAt = null
  let resumed = null
  for (let i = 0; i < total; i += chunk) {
    if (i === total / 3) {
      execSync(`${process.env.INTEROP_FAULT} ${leader}`, { stdio: 'ignore' })
      killedAt = Date.now()
    }
    // One send per partition so each acknowledgement names its base offset
    // and the records of a send are at consecutive offsets in send order.
    const byPartition = [[], [], []]
    for (let j = i; j < i + chunk; j++) byPartition[j % 3].push({ key: `k${j}`, value: `v${j}`, partition: j % 3 })
    for (const messages of byPartition) {
      const [res] = await producer.send({ topic, acks: -1, timeout: 30000, messages })
      const base = BigInt(res.baseOffset)
      messages.forEach((m, k) => acked.set(m.value, `${res.partition}/${base + BigInt(k)}`))
    }
    if (killedAt !== null && resumed === null) resumed = (Date.now() - killedAt) / 1000
  }
  await producer.disconnect()

  const consumer = kafka.consumer({ groupId: `interop-cluster-${RUN}` })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const seen = new Set()
  let bad = null
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`read back ${seen.size} of ${total}`)), 90000)
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        const v = message.value.toString()
        const where = `${partition}/${message.offset}`
        if (!acked.has(v)) bad = bad || `read ${v}, never acknowledged`
        else if (seen.has(v)) bad = bad || `read ${v} twice`
        else if (acked.get(v) !== where) bad = bad || `${v} at ${where}, acknowledged at ${acked.get(v)}`
        seen.add(v)
        if (bad || seen.size >= total) { clearTimeout(timer); resolve() }
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  if (bad) throw new Error(bad)
  return `3 nodes, RF=3: ${total} idempotent acks=all records through kill -9 of leader ${leader} (first ack ${resumed.toFixed(1)}s after the kill), each read back once at its acked offset`
}

main().then(msg => {
  console.log(`PASS ${CLIENT}: ${msg}`)
  process.exit(0)
}, e => {
  console.error(e && e.stack)
  console.log(`FAIL ${CLIENT}: cluster leader kill: ${e && e.name}: ${String(e && e.message).slice(0, 300)}`)
  process.exit(1)
})
