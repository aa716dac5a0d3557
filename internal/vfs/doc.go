// Package vfs is the filesystem seam of everything a node stores: the small
// set of file and directory operations that commitlog, replica, controller
// (the Raft stores) and config (meta.properties) perform,
// behind an interface, so that tests can inject faults (a Sync or Write
// that fails, or blocks until released) and simulate a crash that
// drops unsynced writes. It follows the spirit of pebble's vfs.
//
// Default is the operating system. FaultFS wraps another FS and applies
// Faults to the files whose names match. MemFS keeps files in memory and
// simulates a crash: File.Sync and File.SyncData make a file's bytes
// durable, FS.SyncDir makes a directory's entries (creates, renames,
// removes) durable, and MemFS.CrashClone keeps only what was made durable.
// WatchFS reports failed writes and fsyncs, which take a node's log
// directory offline. Nothing here knows of logs, segments or Kafka.
//
// The node takes one FS for everything it stores (node.Options.FS): the
// partitions, checkpoints, meta.properties and the metadata log's Raft
// stores, so a test can cut the power of a whole cluster at one instant
// (CrashCloneAll).
//
// Lock order: FaultFS.mu and MemFS.mu are leaves, except that CrashCloneAll
// holds the MemFS.mu of every filesystem it clones (taken in argument
// order); FaultFS.mu is never held while an operation of the wrapped FS
// runs or while a Fault blocks.
package vfs
