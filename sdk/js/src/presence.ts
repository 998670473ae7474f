/** `RTMPresence` (api.md §5, R116–R133): who is where, and members' temporary state. */
import { create } from "@bufbuild/protobuf";
import { rtmError } from "./errors";
import {
  GetStateRequestSchema,
  RemoveStateRequestSchema,
  SetStateRequestSchema,
  WhereNowRequestSchema,
  WhoNowRequestSchema,
} from "./gen/switchboard/v1/switchboard_pb";
import { byteLength, checkChannelName, checkUserId } from "./names";
import type { RTMClient } from "./client";
import { unexpected } from "./client";
import { channelTypeName, wireChannelType } from "./session";
import type {
  ChannelType,
  GetOnlineUsersOptions,
  GetOnlineUsersResponse,
  GetStateResponse,
  GetUserChannelsResponse,
  RemoveStateOptions,
  RemoveStateResponse,
  SetStateResponse,
  StateDetail,
  WhereNowResponse,
  WhoNowOptions,
  WhoNowResponse,
} from "./types";

/** Presence calls. */
export class RTMPresence {
  /** @internal */
  constructor(private readonly client: RTMClient) {}

  private check(op: string, channelName: string, channelType: ChannelType): void {
    if (channelType !== "MESSAGE" && channelType !== "STREAM")
      throw rtmError(op, "RTM_ERROR_INVALID_CHANNEL_TYPE", "presence calls take MESSAGE or STREAM (R125)");
    const bad = checkChannelName(channelName, op);
    if (bad) throw bad;
  }

  /** Members of a channel, a page at a time (§5.1, R122–R124). */
  async whoNow(channelName: string, channelType: ChannelType, options?: WhoNowOptions): Promise<WhoNowResponse> {
    const op = "whoNow";
    this.check(op, channelName, channelType);
    const req = create(WhoNowRequestSchema, {
      channelType: wireChannelType(channelType),
      channelName,
      includeUserId: options?.includedUserId ?? true,
      includeState: options?.includedState ?? false,
      page: options?.page ?? "",
    });
    const r = await this.client.request(op, { case: "whoNow", value: req });
    if (r.case !== "whoNow") throw unexpected(op);
    return {
      timestamp: Number(r.value.timestamp),
      totalOccupancy: r.value.totalOccupancy,
      occupants: r.value.occupants.map((u) => ({ userId: u.userId, states: { ...u.states }, statesCount: Object.keys(u.states).length })),
      nextPage: r.value.nextPage,
    };
  }

  /** Same as `whoNow`. */
  async getOnlineUsers(channelName: string, channelType: ChannelType, options?: GetOnlineUsersOptions): Promise<GetOnlineUsersResponse> {
    return this.whoNow(channelName, channelType, options);
  }

  /** Channels a user is visibly present in (§5.2, R126). */
  async whereNow(userId: string): Promise<WhereNowResponse> {
    const op = "whereNow";
    const bad = checkUserId(userId, op);
    if (bad) throw bad;
    const r = await this.client.request(op, { case: "whereNow", value: create(WhereNowRequestSchema, { userId }) });
    if (r.case !== "whereNow") throw unexpected(op);
    const channels = r.value.channels.map((c) => ({ channelName: c.channelName, channelType: channelTypeName(c.channelType) }));
    return { timestamp: Number(r.value.timestamp), channels, totalChannel: channels.length };
  }

  /** Same as `whereNow`. */
  async getUserChannels(userId: string): Promise<GetUserChannelsResponse> {
    return this.whereNow(userId);
  }

  /** Adds or overwrites keys of the caller's state (§5.3, R127–R129). */
  async setState(channelName: string, channelType: ChannelType, state: StateDetail): Promise<SetStateResponse> {
    const op = "setState";
    this.check(op, channelName, channelType);
    if (typeof state !== "object" || state === null || Object.keys(state).length === 0)
      throw rtmError(op, "RTM_ERROR_PRESENCE_INVALID_ARGUMENT", "setState needs at least one key (R128)");
    for (const [k, v] of Object.entries(state)) {
      if (typeof v !== "string") throw rtmError(op, "RTM_ERROR_PRESENCE_INVALID_STATE_VALUE", `the value of ${k} must be a string`);
      if (byteLength(v) > 16 * 1024) throw rtmError(op, "RTM_ERROR_PRESENCE_STATE_VALUE_SIZE_OVERFLOW", `the value of ${k} is over 16 KB (R128)`);
    }
    const req = create(SetStateRequestSchema, { channelType: wireChannelType(channelType), channelName, states: { ...state } });
    const r = await this.client.request(op, { case: "setState", value: req });
    if (r.case !== "setState") throw unexpected(op);
    return { timestamp: Number(r.value.timestamp) };
  }

  /** A member's state (§5.4, R131). */
  async getState(userId: string, channelName: string, channelType: ChannelType): Promise<GetStateResponse> {
    const op = "getState";
    this.check(op, channelName, channelType);
    const bad = checkUserId(userId, op);
    if (bad) throw bad;
    const req = create(GetStateRequestSchema, { channelType: wireChannelType(channelType), channelName, userId });
    const r = await this.client.request(op, { case: "getState", value: req });
    if (r.case !== "getState") throw unexpected(op);
    return { timestamp: Number(r.value.timestamp), userId: r.value.userId, states: { ...r.value.states }, statesCount: Object.keys(r.value.states).length };
  }

  /** Removes keys (or all) of the caller's state (§5.5, R130). */
  async removeState(channelName: string, channelType: ChannelType, options?: RemoveStateOptions): Promise<RemoveStateResponse> {
    const op = "removeState";
    this.check(op, channelName, channelType);
    const keys = options?.states ?? [];
    if (new Set(keys).size !== keys.length) throw rtmError(op, "RTM_ERROR_PRESENCE_STATE_DUPLICATE_KEY", "a key is listed twice (R130)");
    const req = create(RemoveStateRequestSchema, { channelType: wireChannelType(channelType), channelName, keys });
    const r = await this.client.request(op, { case: "removeState", value: req });
    if (r.case !== "removeState") throw unexpected(op);
    return { timestamp: Number(r.value.timestamp) };
  }
}
