/** `RTMLock` (api.md §7, R150–R159): named locks of a MESSAGE or STREAM channel. */
import { create } from "@bufbuild/protobuf";
import { rtmError } from "./errors";
import {
  AcquireLockRequestSchema,
  GetLockRequestSchema,
  ReleaseLockRequestSchema,
  RemoveLockRequestSchema,
  RevokeLockRequestSchema,
  SetLockRequestSchema,
  type LockReply,
} from "./gen/switchboard/v1/switchboard_pb";
import { checkChannelName, checkLockName, checkUserId } from "./names";
import type { RTMClient } from "./client";
import { unexpected } from "./client";
import { lockDetail, wireChannelType } from "./session";
import type {
  AcquireLockOptions,
  AcquireLockResponse,
  ChannelType,
  GetLockResponse,
  LockOperationResponse,
  ReleaseLockResponse,
  RemoveLockResponse,
  RevokeLockResponse,
  SetLockOptions,
  SetLockResponse,
} from "./types";

/** Lock calls. */
export class RTMLock {
  private busy = new Set<string>();

  /** @internal */
  constructor(private readonly client: RTMClient) {}

  private check(op: string, channelName: string, channelType: ChannelType, lockName?: string): void {
    if (channelType !== "MESSAGE" && channelType !== "STREAM")
      throw rtmError(op, "RTM_ERROR_INVALID_CHANNEL_TYPE", "lock calls take MESSAGE or STREAM (R125)");
    const bad = checkChannelName(channelName, op) ?? (lockName === undefined ? undefined : checkLockName(lockName, op));
    if (bad) throw bad;
  }

  /** One operation at a time per lock (R158). */
  private async guarded<T>(op: string, channelName: string, channelType: ChannelType, lockName: string, f: () => Promise<T>): Promise<T> {
    const key = `${channelType}\u0000${channelName}\u0000${lockName}`;
    if (this.busy.has(key)) throw rtmError(op, "RTM_ERROR_LOCK_OPERATION_PERFORMING", "another operation on this lock is pending (R158)");
    this.busy.add(key);
    try {
      return await f();
    } finally {
      this.busy.delete(key);
    }
  }

  private response(r: LockReply, channelName: string, channelType: ChannelType, lockName: string): LockOperationResponse {
    return { timestamp: Number(r.timestamp), channelName: r.channelName || channelName, channelType, lockName: r.lockName || lockName };
  }

  /** Defines a lock (ttl 10–300 s, clamped, R150). */
  async setLock(channelName: string, channelType: ChannelType, lockName: string, options?: SetLockOptions): Promise<SetLockResponse> {
    const op = "setLock";
    this.check(op, channelName, channelType, lockName);
    const ttl = Math.min(300, Math.max(10, Math.round(options?.ttl ?? 10)));
    return this.guarded(op, channelName, channelType, lockName, async () => {
      const r = await this.client.request(op, { case: "setLock", value: create(SetLockRequestSchema, { channelType: wireChannelType(channelType), channelName, lockName, ttl }) });
      if (r.case !== "setLock") throw unexpected(op);
      return this.response(r.value, channelName, channelType, lockName);
    });
  }

  /** Deletes a lock. */
  async removeLock(channelName: string, channelType: ChannelType, lockName: string): Promise<RemoveLockResponse> {
    const op = "removeLock";
    this.check(op, channelName, channelType, lockName);
    return this.guarded(op, channelName, channelType, lockName, async () => {
      const r = await this.client.request(op, { case: "removeLock", value: create(RemoveLockRequestSchema, { channelType: wireChannelType(channelType), channelName, lockName }) });
      if (r.case !== "removeLock") throw unexpected(op);
      return this.response(r.value, channelName, channelType, lockName);
    });
  }

  /** Acquires a lock; with `retry` waits in line until acquired (R151, R152). */
  async acquireLock(channelName: string, channelType: ChannelType, lockName: string, options?: AcquireLockOptions): Promise<AcquireLockResponse> {
    const op = "acquireLock";
    this.check(op, channelName, channelType, lockName);
    const retry = options?.retry === true;
    return this.guarded(op, channelName, channelType, lockName, async () => {
      const r = await this.client.request(
        op,
        { case: "acquireLock", value: create(AcquireLockRequestSchema, { channelType: wireChannelType(channelType), channelName, lockName, retry }) },
        retry ? { timeoutMs: null } : {},
      );
      if (r.case !== "acquireLock") throw unexpected(op);
      return this.response(r.value, channelName, channelType, lockName);
    });
  }

  /** Releases a lock this user owns (R154). */
  async releaseLock(channelName: string, channelType: ChannelType, lockName: string): Promise<ReleaseLockResponse> {
    const op = "releaseLock";
    this.check(op, channelName, channelType, lockName);
    return this.guarded(op, channelName, channelType, lockName, async () => {
      const r = await this.client.request(op, { case: "releaseLock", value: create(ReleaseLockRequestSchema, { channelType: wireChannelType(channelType), channelName, lockName }) });
      if (r.case !== "releaseLock") throw unexpected(op);
      return this.response(r.value, channelName, channelType, lockName);
    });
  }

  /** Frees a lock if `owner` owns it (R155). */
  async revokeLock(channelName: string, channelType: ChannelType, lockName: string, owner: string): Promise<RevokeLockResponse> {
    const op = "revokeLock";
    this.check(op, channelName, channelType, lockName);
    const bad = checkUserId(owner, op);
    if (bad) throw bad;
    return this.guarded(op, channelName, channelType, lockName, async () => {
      const r = await this.client.request(op, { case: "revokeLock", value: create(RevokeLockRequestSchema, { channelType: wireChannelType(channelType), channelName, lockName, owner }) });
      if (r.case !== "revokeLock") throw unexpected(op);
      return this.response(r.value, channelName, channelType, lockName);
    });
  }

  /** Every lock of a channel. */
  async getLock(channelName: string, channelType: ChannelType): Promise<GetLockResponse> {
    const op = "getLock";
    this.check(op, channelName, channelType);
    const r = await this.client.request(op, { case: "getLock", value: create(GetLockRequestSchema, { channelType: wireChannelType(channelType), channelName }) });
    if (r.case !== "getLock") throw unexpected(op);
    const lockDetails = r.value.locks.map(lockDetail);
    return { timestamp: Number(r.value.timestamp), channelName, channelType, totalLocks: lockDetails.length, lockDetails };
  }
}
