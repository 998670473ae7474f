// Interop driver for crates/token/tests/agora_interop.rs (token.md §1, §8).
//
// Reads one JSON request on stdin:
//   { "module_dir": ".../node_modules/agora-token",
//     "build": [ { "kind": ..., ...builder inputs } ],
//     "parse": [ { "token", "certificate", "wrong_certificate" } ] }
// builds every "build" entry with the agora-token builders and parses every "parse" entry
// with AccessToken2.from_string + verifySignature, and prints one JSON response on stdout:
//   { "package_version", "node", "built": [ { "token", "before", "after" } ],
//     "parsed": [ { "parse_ok", "signature_ok", "wrong_signature_ok", "app_id", "issue_ts",
//                   "expire", "salt", "services", "inflated_hex" } ] }
'use strict'

const path = require('path')
const zlib = require('zlib')

function readStdin() {
    return require('fs').readFileSync(0, 'utf8')
}

function main() {
    const request = JSON.parse(readStdin())
    const agora = require(request.module_dir)
    const { AccessToken2 } = require(path.join(request.module_dir, 'src', 'AccessToken2'))
    const response = {
        package_version: require(path.join(request.module_dir, 'package.json')).version,
        node: process.version,
        built: request.build.map(input => build(agora, input)),
        parsed: request.parse.map(input => parse(AccessToken2, input))
    }
    process.stdout.write(JSON.stringify(response))
}

// Whole seconds of the clock, to bracket the builder's own issue time.
function nowSeconds() {
    return Math.floor(Date.now() / 1000)
}

function build(agora, i) {
    const { RtcTokenBuilder, RtmTokenBuilder, Rtm2Permissions } = agora
    const before = nowSeconds()
    let token
    switch (i.kind) {
        case 'rtm':
            token = RtmTokenBuilder.buildToken(i.app_id, i.app_certificate, i.user_id, i.expire)
            break
        case 'rtm2': {
            const permissions = new Rtm2Permissions()
            for (const [resourceType, permissionType, names] of i.permissions) {
                permissions.add(resourceType, permissionType, names)
            }
            token = RtmTokenBuilder.buildTokenWithPermissions(
                i.app_id, i.app_certificate, i.user_id, permissions, i.expire)
            break
        }
        case 'rtc_account':
            token = RtcTokenBuilder.buildTokenWithUserAccount(i.app_id, i.app_certificate,
                i.channel_name, i.account, i.role, i.token_expire, i.privilege_expire)
            break
        case 'rtc_uid':
            token = RtcTokenBuilder.buildTokenWithUid(i.app_id, i.app_certificate,
                i.channel_name, i.uid, i.role, i.token_expire, i.privilege_expire)
            break
        case 'rtc_rtm':
            token = RtcTokenBuilder.buildTokenWithRtm(i.app_id, i.app_certificate,
                i.channel_name, i.account, i.role, i.token_expire, i.privilege_expire)
            break
        case 'rtc_rtm2':
            token = RtcTokenBuilder.buildTokenWithRtm2(i.app_id, i.app_certificate,
                i.channel_name, i.account, i.role, i.token_expire, i.join, i.audio, i.video,
                i.data, i.rtm_user_id, i.rtm_token_expire)
            break
        default:
            throw new Error(`unknown build kind ${i.kind}`)
    }
    return { token, before, after: nowSeconds() }
}

// A field of a parsed service as JSON: Buffers (the package's strings) become text.
function plain(value) {
    return Buffer.isBuffer(value) ? value.toString('utf8') : value
}

function describeService(service) {
    const out = { type: service.service_type(), privileges: {}, fields: {} }
    for (const [id, value] of Object.entries(service.__privileges)) {
        out.privileges[id] = value
    }
    for (const [key, value] of Object.entries(service)) {
        if (key === '__type' || key === '__privileges') {
            continue
        }
        if (key === '__permissions') {
            out.permissions = []
            for (const [resourceType, byPermission] of Object.entries(value.details)) {
                for (const [permissionType, names] of Object.entries(byPermission)) {
                    out.permissions.push([Number(resourceType), Number(permissionType), names.map(plain)])
                }
            }
            continue
        }
        out.fields[key.replace(/^__/, '')] = plain(value)
    }
    return out
}

function parse(AccessToken2, i) {
    const token = new AccessToken2()
    const parseOk = token.from_string(i.token)
    const out = {
        parse_ok: parseOk,
        signature_ok: parseOk && token.verifySignature(i.certificate),
        wrong_signature_ok: parseOk && token.verifySignature(i.wrong_certificate),
        app_id: plain(token.appId),
        issue_ts: token.issueTs,
        expire: token.expire,
        salt: token.salt,
        services: token.services.map(describeService),
        inflated_hex: null
    }
    try {
        out.inflated_hex = zlib.inflateSync(Buffer.from(i.token.substring(3), 'base64')).toString('hex')
    } catch (error) {
        out.inflated_hex = null
    }
    return out
}

main()
