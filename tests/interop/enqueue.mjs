// Enqueue a job for the sidecar, as a Node app would: `node enqueue.mjs QUEUE DATA_JSON [OPTS_JSON]`.
// Prints the job's id (BullMQ's own, within QUEUE).
import { Queue } from 'bullmq';
import { connect, prefix } from './connection.mjs';

const [queueName, data, opts = '{}'] = process.argv.slice(2);
const connection = connect();
const queue = new Queue(queueName, { connection, prefix });
try {
  const job = await queue.add(JSON.parse(data).path ?? 'request', JSON.parse(data), JSON.parse(opts));
  console.log(job.id);
} finally {
  await queue.close();
  await connection.quit();
}
