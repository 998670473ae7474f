/** `RTMHistory` (api.md §8, R160–R164): stored messages of a MESSAGE channel or a USER conversation. */
import { create } from "@bufbuild/protobuf";
import { rtmError } from "./errors";
import { GetMessagesRequestSchema, MessageType as PbMessageType } from "./gen/switchboard/v1/switchboard_pb";
import { checkChannelName } from "./names";
import type { RTMClient } from "./client";
import { unexpected } from "./client";
import { wireChannelType } from "./session";
import type { GetHistoryMessageOptions, GetMessagesResponse, HistoryChannelType, HistoryMessage } from "./types";

const decoder = new TextDecoder("utf-8", { fatal: true });

/** History calls. */
export class RTMHistory {
  /** @internal */
  constructor(private readonly client: RTMClient) {}

  /** Messages stored with `storeInHistory`, newest first (§8). */
  async getMessages(channelName: string, channelType: HistoryChannelType, options?: GetHistoryMessageOptions): Promise<GetMessagesResponse> {
    const op = "getMessages";
    if (channelType !== "MESSAGE" && channelType !== "USER")
      throw rtmError(op, "RTM_ERROR_INVALID_CHANNEL_TYPE", "getMessages takes MESSAGE or USER (R161)");
    const bad = checkChannelName(channelName, op);
    if (bad) throw bad;
    const start = options?.start ?? 0;
    const end = options?.end ?? 0;
    if (start && end && (start <= end || start - end > 86_400_000))
      throw rtmError(op, "RTM_ERROR_HISTORY_INVALID_TIMESTAMP", "start must be later than end and at most 24 h after it (R163)");
    const count = options?.messageCount ?? 100;
    const req = create(GetMessagesRequestSchema, {
      channelType: wireChannelType(channelType),
      channelName,
      messageCount: count > 0 && count <= 100 ? Math.floor(count) : 100,
      start: BigInt(Math.max(0, Math.floor(start))),
      end: BigInt(Math.max(0, Math.floor(end))),
    });
    const r = await this.client.request(op, { case: "getMessages", value: req });
    if (r.case !== "getMessages") throw unexpected(op);
    const messageList: HistoryMessage[] = [];
    for (const m of r.value.messages) {
      const isString = m.messageType === PbMessageType.STRING;
      let message: string | Uint8Array = m.payload.slice();
      const plain = await this.client.openStored(m.payload, isString);
      if (plain === undefined) continue;
      message = plain;
      messageList.push({ message, messageType: isString ? "STRING" : "BINARY", customType: m.customType, publisher: m.publisher, timestamp: Number(m.timestamp) });
    }
    return { timestamp: Number(r.value.timestamp), messageList, count: messageList.length, newStart: Number(r.value.newStart) };
  }
}
