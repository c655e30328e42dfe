// The Redis connection and BullMQ key prefix the sidecar uses, from the environment
// (REDIS_URL, BULLMQ_PREFIX), as a Node app sharing its queues would configure them.
import IORedis from 'ioredis';

export const prefix = process.env.BULLMQ_PREFIX ?? 'bull';

export function connect() {
  // BullMQ wants maxRetriesPerRequest: null on connections its workers and queues share.
  return new IORedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
    maxRetriesPerRequest: null,
  });
}
