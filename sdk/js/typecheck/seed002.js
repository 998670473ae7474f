// @ts-check
// Seed 002's stream channel SNAPSHOT diffing code, verbatim below the marked line
// (only the `_63` line-number artefacts of the copied page are removed). It must type-check
// unchanged against agora-rtm-sdk and against this package (checkJs).
import AgoraRTM from 'agora-rtm-sdk';
const { RTM } = AgoraRTM;
// ---- seed 002, unchanged ----
// Global variable
const channelTopics = new Map();
// Event handler
const rtmConfig = {};
const rtm = new RTM("appid", "uid", rtmConfig);
rtm.addEventListener("topic", (topicEvent) => {
console.log(topicEvent, "topic");
const topicsCache = channelTopics.get(topicEvent.channelName) ?? new Map();
const remoteLeaved = new Map();
const remoteJoined = new Map();
const { publisher: user, channelName } = topicEvent;
if (topicEvent.eventType === "SNAPSHOT") {
topicEvent.topicInfos.forEach(({ publishers, topicName }) => {
remoteJoined.set(topicName, []);
remoteLeaved.set(topicName, []);
const topicDetailsByCache = topicsCache.get(topicName) ?? [];
// Removed
topicDetailsByCache.forEach(({ publisherMeta, publisherUserId: targetUid }) => {
if (!publishers.some(({ publisherUserId: eventUid }) => targetUid === eventUid)) {
remoteLeaved.get(topicName)?.push({ publisherUserId: targetUid, publisherMeta });
topicDetailsByCache.filter(({ publisherUserId: cacheUid }) => cacheUid !== targetUid);
}
});
// Added
publishers.forEach(({ publisherMeta, publisherUserId: eventUid }) => {
if (!topicDetailsByCache.some(({ publisherUserId: cacheUid }) => eventUid === cacheUid)) {
remoteJoined.get(topicName)?.push({ publisherUserId: eventUid, publisherMeta });
topicDetailsByCache.push({ publisherUserId: eventUid, publisherMeta });
}
});
topicsCache.set(topicName, topicDetailsByCache);
});
} else {
// Your code for handling the updated event
topicEvent.topicInfos.forEach(({ topicName, publishers }) => {
const topicDetailsByCache = topicsCache.get(topicName) ?? [];
publishers.forEach(({ publisherMeta, publisherUserId }) => {
if (user === publisherUserId) {
switch (topicEvent.eventType) {
case "REMOTE_JOIN": {
topicDetailsByCache.push({ publisherMeta, publisherUserId });
break;
}
case "REMOTE_LEAVE": {
topicDetailsByCache.filter(({ publisherUserId: uid }) => uid !== publisherUserId);
break;
}
}
topicsCache.set(topicName, topicDetailsByCache);
}
});
});
}
channelTopics.set(channelName, topicsCache);
console.log({ remoteJoined, remoteLeaved, channelTopics, channelName }, "topic diff for debug");
});
