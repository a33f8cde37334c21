import { describe, expect, it } from 'vitest';
import { quoteIdent, quoteLiteral, quoteQualified } from '../../src/drivers/postgres/sql-text.ts';
import { parseDuration } from '../../src/runtime/duration.ts';

describe('quoteIdent', () => {
  it.each([
    ['analytics_reader', '"analytics_reader"'],
    ['a"b', '"a""b"'],
    ['x"; DROP TABLE raw.orders; --', '"x""; DROP TABLE raw.orders; --"'],
    ['Ünïcödé', '"Ünïcödé"'],
  ])('%s -> %s', (input, expected) => {
    expect(quoteIdent(input)).toBe(expected);
  });

  it('refuses what PostgreSQL would truncate or cannot hold', () => {
    expect(() => quoteIdent('')).toThrow(/empty/);
    expect(() => quoteIdent('a\0b')).toThrow(/NUL/);
    expect(() => quoteIdent('x'.repeat(64))).toThrow(/63 bytes/);
    expect(() => quoteIdent('é'.repeat(32))).toThrow(/63 bytes/); // 64 bytes in UTF-8
    expect(quoteIdent('x'.repeat(63))).toHaveLength(65);
  });

  it('quotes both parts of a qualified name and literals', () => {
    expect(quoteQualified('raw', 'orders')).toBe('"raw"."orders"');
    expect(quoteLiteral("it's")).toBe("E'it''s'");
    // The same text under standard_conforming_strings on and off: backslashes doubled, never \'.
    expect(quoteLiteral('a\\')).toBe("E'a\\\\'");
    expect(quoteLiteral("\\'; CREATE ROLE x; --")).toBe("E'\\\\''; CREATE ROLE x; --'");
    expect(() => quoteLiteral('a\0b')).toThrow(/NUL/);
  });
});

describe('parseDuration', () => {
  it.each([
    ['720h', 720 * 3_600_000],
    ['1h30m', 5_400_000],
    ['90s', 90_000],
    ['250ms', 250],
    ['1.5h', 5_400_000],
  ])('%s', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(['', '10', 'h', '10d', '1h 30m', '-5m'])('refuses %j', (text) => {
    expect(() => parseDuration(text)).toThrow(/invalid duration/);
  });
});
