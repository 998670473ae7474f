/** `RTMStorage` (api.md §6, R134–R149): channel and user metadata. */
import { create } from "@bufbuild/protobuf";
import { rtmError } from "./errors";
import {
  ChannelType as PbChannelType,
  GetMetadataRequestSchema,
  MetadataItemSchema,
  MetadataWriteRequestSchema,
  SubscribeUserMetadataRequestSchema,
  UnsubscribeUserMetadataRequestSchema,
} from "./gen/switchboard/v1/switchboard_pb";
import { checkChannelName, checkLockName, checkUserId } from "./names";
import type { RTMClient } from "./client";
import { unexpected } from "./client";
import { storageData, wireChannelType } from "./session";
import type {
  ChannelType,
  GetChannelMetadataResponse,
  GetUserMetadataOptions,
  GetUserMetadataResponse,
  MetadataItem,
  MetadataOptions,
  RemoveChannelMetadataOptions,
  RemoveChannelMetadataResponse,
  RemoveUserMetadataOptions,
  RemoveUserMetadataResponse,
  SetChannelMetadataResponse,
  SetOrUpdateUserMetadataOptions,
  SetUserMetadataResponse,
  SubscribeUserMetaResponse,
  UnsubscribeUserMetaResponse,
  UpdateChannelMetadataResponse,
  UpdateUserMetadataResponse,
} from "./types";

type Kind = "setMetadata" | "updateMetadata" | "removeMetadata";

/** A revision guard: -1 (or absent) = none; otherwise an integer ≥ 0 (R140). */
function guard(op: string, v: number | undefined, kind: Kind): bigint | undefined {
  if (v === undefined || v === -1) return undefined;
  if (!Number.isInteger(v) || v < -1 || (v === 0 && kind !== "setMetadata"))
    throw rtmError(op, "RTM_ERROR_STORAGE_INVALID_REVISION", `revision ${v} is not valid here (R140)`);
  return BigInt(v);
}

/** Metadata calls. */
export class RTMStorage {
  /** @internal */
  constructor(private readonly client: RTMClient) {}

  private async write(
    op: string,
    kind: Kind,
    channelType: PbChannelType,
    channelName: string,
    data: MetadataItem[] | undefined,
    options: MetadataOptions | undefined,
  ): Promise<{ timestamp: number; totalCount: number; channelName: string }> {
    if (kind !== "removeMetadata" && (!Array.isArray(data) || data.length === 0))
      throw rtmError(op, "RTM_ERROR_STORAGE_INVALID_METADATA_ITEM", "at least one item is needed (R145)");
    if (options?.lockName) {
      const bad = checkLockName(options.lockName, op, true);
      if (bad) throw bad;
    }
    const items = (data ?? []).map((i) => {
      if (typeof i?.key !== "string") throw rtmError(op, "RTM_ERROR_STORAGE_INVALID_KEY", "an item needs a string key (R11)");
      const item = create(MetadataItemSchema, { key: i.key, value: typeof i.value === "string" ? i.value : "" });
      const rev = guard(op, i.revision, kind);
      if (rev !== undefined) item.revision = rev;
      return item;
    });
    const req = create(MetadataWriteRequestSchema, {
      channelType,
      channelName,
      items,
      lockName: options?.lockName ?? "",
      addTimestamp: options?.addTimeStamp === true,
      addUserId: options?.addUserId === true,
    });
    const major = guard(op, options?.majorRevision, kind);
    if (major !== undefined) req.majorRevision = major;
    const body =
      kind === "setMetadata"
        ? ({ case: "setMetadata", value: req } as const)
        : kind === "updateMetadata"
          ? ({ case: "updateMetadata", value: req } as const)
          : ({ case: "removeMetadata", value: req } as const);
    const r = await this.client.request(op, body);
    if (r.case !== kind) throw unexpected(op);
    return { timestamp: Number(r.value.timestamp), totalCount: r.value.totalCount, channelName: r.value.channelName };
  }

  private channel(op: string, channelName: string, channelType: ChannelType): PbChannelType {
    if (channelType !== "MESSAGE" && channelType !== "STREAM")
      throw rtmError(op, "RTM_ERROR_INVALID_CHANNEL_TYPE", "channel metadata takes MESSAGE or STREAM (R125)");
    const bad = checkChannelName(channelName, op);
    if (bad) throw bad;
    return wireChannelType(channelType);
  }

  private user(op: string, userId: string | undefined): string {
    if (userId === undefined || userId === "") return "";
    const bad = checkUserId(userId, op);
    if (bad) throw bad;
    return userId;
  }

  /** Creates or overwrites items of a channel's metadata (R135). */
  async setChannelMetadata(channelName: string, channelType: ChannelType, data: MetadataItem[], options?: MetadataOptions): Promise<SetChannelMetadataResponse> {
    const t = this.channel("setChannelMetadata", channelName, channelType);
    const r = await this.write("setChannelMetadata", "setMetadata", t, channelName, data, options);
    return { timestamp: r.timestamp, channelName, channelType, totalCount: r.totalCount };
  }

  /** Modifies existing items (R136). */
  async updateChannelMetadata(channelName: string, channelType: ChannelType, data: MetadataItem[], options?: MetadataOptions): Promise<UpdateChannelMetadataResponse> {
    const t = this.channel("updateChannelMetadata", channelName, channelType);
    const r = await this.write("updateChannelMetadata", "updateMetadata", t, channelName, data, options);
    return { timestamp: r.timestamp, channelName, channelType, totalCount: r.totalCount };
  }

  /** Deletes the listed items, or all (R137). */
  async removeChannelMetadata(channelName: string, channelType: ChannelType, options?: RemoveChannelMetadataOptions): Promise<RemoveChannelMetadataResponse> {
    const t = this.channel("removeChannelMetadata", channelName, channelType);
    const r = await this.write("removeChannelMetadata", "removeMetadata", t, channelName, options?.data, options);
    return { timestamp: r.timestamp, channelName, channelType, totalCount: r.totalCount };
  }

  /** A channel's metadata (R134). */
  async getChannelMetadata(channelName: string, channelType: ChannelType): Promise<GetChannelMetadataResponse> {
    const op = "getChannelMetadata";
    const t = this.channel(op, channelName, channelType);
    const r = await this.client.request(op, { case: "getMetadata", value: create(GetMetadataRequestSchema, { channelType: t, channelName }) });
    if (r.case !== "getMetadata") throw unexpected(op);
    return { timestamp: Number(r.value.timestamp), channelName, channelType, ...storageData(r.value.data) };
  }

  /** Creates or overwrites items of a user's metadata (R146). */
  async setUserMetadata(data: MetadataItem[], options?: SetOrUpdateUserMetadataOptions): Promise<SetUserMetadataResponse> {
    const op = "setUserMetadata";
    const user = this.user(op, options?.userId);
    const r = await this.write(op, "setMetadata", PbChannelType.USER, user, data, options);
    return { timestamp: r.timestamp, userId: r.channelName || user || this.client.userId, totalCount: r.totalCount };
  }

  /** Modifies existing items of a user's metadata. */
  async updateUserMetadata(data: MetadataItem[], options?: SetOrUpdateUserMetadataOptions): Promise<UpdateUserMetadataResponse> {
    const op = "updateUserMetadata";
    const user = this.user(op, options?.userId);
    const r = await this.write(op, "updateMetadata", PbChannelType.USER, user, data, options);
    return { timestamp: r.timestamp, userId: r.channelName || user || this.client.userId, totalCount: r.totalCount };
  }

  /** Deletes items (or all) of a user's metadata. */
  async removeUserMetadata(options?: RemoveUserMetadataOptions): Promise<RemoveUserMetadataResponse> {
    const op = "removeUserMetadata";
    const user = this.user(op, options?.userId);
    const r = await this.write(op, "removeMetadata", PbChannelType.USER, user, options?.data, options);
    return { timestamp: r.timestamp, userId: r.channelName || user || this.client.userId, totalCount: r.totalCount };
  }

  /** A user's metadata (default the caller). */
  async getUserMetadata(options?: GetUserMetadataOptions): Promise<GetUserMetadataResponse> {
    const op = "getUserMetadata";
    const user = this.user(op, options?.userId);
    const r = await this.client.request(op, {
      case: "getMetadata",
      value: create(GetMetadataRequestSchema, { channelType: PbChannelType.USER, channelName: user }),
    });
    if (r.case !== "getMetadata") throw unexpected(op);
    return { timestamp: Number(r.value.timestamp), userId: r.value.channelName || user || this.client.userId, ...storageData(r.value.data) };
  }

  /** Starts `storage` events for a user's metadata: a SNAPSHOT, then UPDATEs (R147, R148). */
  async subscribeUserMetadata(userId: string): Promise<SubscribeUserMetaResponse> {
    const op = "subscribeUserMetadata";
    const bad = checkUserId(userId, op);
    if (bad) throw bad;
    const r = await this.client.request(op, { case: "subscribeUserMetadata", value: create(SubscribeUserMetadataRequestSchema, { userId }) });
    if (r.case !== "subscribeUserMetadata") throw unexpected(op);
    this.client.userMetadata.add(userId);
    return { timestamp: Number(r.value.timestamp), userId };
  }

  /** Stops them (−12015 when not subscribed). */
  async unsubscribeUserMetadata(userId: string): Promise<UnsubscribeUserMetaResponse> {
    const op = "unsubscribeUserMetadata";
    const bad = checkUserId(userId, op);
    if (bad) throw bad;
    try {
      const r = await this.client.request(op, { case: "unsubscribeUserMetadata", value: create(UnsubscribeUserMetadataRequestSchema, { userId }) });
      if (r.case !== "unsubscribeUserMetadata") throw unexpected(op);
      this.client.userMetadata.delete(userId);
      return { timestamp: Number(r.value.timestamp), userId };
    } catch (e) {
      if ((e as { errorCode?: number }).errorCode === -12015) this.client.userMetadata.delete(userId);
      throw e;
    }
  }
}
