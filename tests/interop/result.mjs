// Wait for a job to finish and print what Node sees of it, as one JSON line:
// `node result.mjs QUEUE JOB_ID [TIMEOUT_MS]` -> {"state", "returnvalue", "failedReason", "attemptsMade"}.
// Waits the way a Node app does: QueueEvents and job.waitUntilFinished.
import { Job, Queue, QueueEvents } from 'bullmq';
import { connect, prefix } from './connection.mjs';

const [queueName, jobId, timeoutMs = '20000'] = process.argv.slice(2);
const connection = connect();
const queue = new Queue(queueName, { connection, prefix });
const eventsConnection = connect(); // QueueEvents blocks on its own connection
const events = new QueueEvents(queueName, { connection: eventsConnection, prefix });
try {
  await events.waitUntilReady();
  const job = await Job.fromId(queue, jobId);
  if (!job) throw new Error(`no job ${jobId} in ${queueName}`);
  try {
    await job.waitUntilFinished(events, Number(timeoutMs));
  } catch {
    // failed jobs reject; their state and reason are read below
  }
  const finished = await Job.fromId(queue, jobId);
  console.log(JSON.stringify({
    state: await finished.getState(),
    returnvalue: finished.returnvalue ?? null,
    failedReason: finished.failedReason ?? null,
    attemptsMade: finished.attemptsMade,
  }));
} finally {
  await events.close();
  await queue.close();
  await connection.quit();
  await eventsConnection.quit();
}
