using System.Buffers;
using System.Text;
using FsCheck;
using FsCheck.Fluent;
using Sluice.Protocol.Http2;

namespace Sluice.Protocol.Tests.Http2;

/// <summary>HPACK (RFC 7541): the Appendix C examples, the Huffman code, malformed input and our request encoder.</summary>
public sealed class HpackTests
{
    private static readonly Config Config = Config.QuickThrowOnFailure.WithMaxTest(500);

    private static byte[] Hex(string hex) => Convert.FromHexString(string.Concat(hex.Where(c => !char.IsWhiteSpace(c))));

    private static KeyValuePair<string, string> H(string name, string value) => new(name, value);

    private static List<KeyValuePair<string, string>> Decode(HpackDecoder decoder, string hex)
    {
        var headers = new List<KeyValuePair<string, string>>();
        decoder.Decode(Hex(hex), headers);
        return headers;
    }

    /// <summary>Decodes one block and checks the fields, then the dynamic table (newest first) and its size.</summary>
    private static void AssertDecodes(HpackDecoder decoder, string hex, KeyValuePair<string, string>[] expected, KeyValuePair<string, string>[] expectedTable, int expectedTableSize)
    {
        Assert.Equal(expected, Decode(decoder, hex));
        Assert.Equal(expectedTable, decoder.GetDynamicTable());
        Assert.Equal(expectedTableSize, decoder.DynamicTableSize);
    }

    // ---- RFC 7541 Appendix C.2: header field representations ----

    [Fact]
    public void C2_1_literal_with_indexing_adds_to_the_dynamic_table()
    {
        var decoder = new HpackDecoder();
        AssertDecodes(decoder, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
            [H("custom-key", "custom-header")], [H("custom-key", "custom-header")], 55);
    }

    [Fact]
    public void C2_2_literal_without_indexing_leaves_the_table_empty()
    {
        var decoder = new HpackDecoder();
        AssertDecodes(decoder, "040c 2f73 616d 706c 652f 7061 7468", [H(":path", "/sample/path")], [], 0);
    }

    [Fact]
    public void C2_3_literal_never_indexed_leaves_the_table_empty()
    {
        var decoder = new HpackDecoder();
        AssertDecodes(decoder, "1008 7061 7373 776f 7264 0673 6563 7265 74", [H("password", "secret")], [], 0);
    }

    [Fact]
    public void C2_4_indexed_field_from_the_static_table()
    {
        var decoder = new HpackDecoder();
        AssertDecodes(decoder, "82", [H(":method", "GET")], [], 0);
    }

    // ---- C.3 / C.4: three requests on one connection, without and with Huffman coding ----

    private static readonly KeyValuePair<string, string>[] Request1 = [H(":method", "GET"), H(":scheme", "http"), H(":path", "/"), H(":authority", "www.example.com")];
    private static readonly KeyValuePair<string, string>[] Request2 = [.. Request1, H("cache-control", "no-cache")];
    private static readonly KeyValuePair<string, string>[] Request3 =
        [H(":method", "GET"), H(":scheme", "https"), H(":path", "/index.html"), H(":authority", "www.example.com"), H("custom-key", "custom-value")];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void C3_and_C4_requests_share_one_dynamic_table(bool huffman)
    {
        var blocks = huffman
            ? new[]
            {
                "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
                "8286 84be 5886 a8eb 1064 9cbf",
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
            }
            : new[]
            {
                "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                "8286 84be 5808 6e6f 2d63 6163 6865",
                "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
            };
        var decoder = new HpackDecoder();

        AssertDecodes(decoder, blocks[0], Request1, [H(":authority", "www.example.com")], 57);
        // 0xbe is dynamic index 62: the :authority entry the first request added.
        AssertDecodes(decoder, blocks[1], Request2, [H("cache-control", "no-cache"), H(":authority", "www.example.com")], 110);
        // 0xbf is dynamic index 63: right only if the second request pushed :authority one place back.
        AssertDecodes(decoder, blocks[2], Request3,
            [H("custom-key", "custom-value"), H("cache-control", "no-cache"), H(":authority", "www.example.com")], 164);
    }

    // ---- C.5 / C.6: three responses with a 256-byte table, so entries are evicted ----

    private const string Date1 = "Mon, 21 Oct 2013 20:13:21 GMT";
    private const string Date2 = "Mon, 21 Oct 2013 20:13:22 GMT";
    private const string Location = "https://www.example.com";
    private const string Cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void C5_and_C6_responses_evict_the_oldest_entries(bool huffman)
    {
        var blocks = huffman
            ? new[]
            {
                """
                4882 6402 5885 aec3 771a 4b61 96d0 7abe
                9410 54d4 44a8 2005 9504 0b81 66e0 82a6
                2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8
                e9ae 82ae 43d3
                """,
                "4883 640e ffc1 c0bf",
                """
                88c1 6196 d07a be94 1054 d444 a820 0595
                040b 8166 e084 a62d 1bff c05a 839b d9ab
                77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b
                3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
                9587 3160 65c0 03ed 4ee5 b106 3d50 07
                """,
            }
            : new[]
            {
                """
                4803 3330 3258 0770 7269 7661 7465 611d
                4d6f 6e2c 2032 3120 4f63 7420 3230 3133
                2032 303a 3133 3a32 3120 474d 546e 1768
                7474 7073 3a2f 2f77 7777 2e65 7861 6d70
                6c65 2e63 6f6d
                """,
                "4803 3330 37c1 c0bf",
                """
                88c1 611d 4d6f 6e2c 2032 3120 4f63 7420
                3230 3133 2032 303a 3133 3a32 3220 474d
                54c0 5a04 677a 6970 7738 666f 6f3d 4153
                444a 4b48 514b 425a 584f 5157 454f 5049
                5541 5851 5745 4f49 553b 206d 6178 2d61
                6765 3d33 3630 303b 2076 6572 7369 6f6e
                3d31
                """,
            };
        var decoder = new HpackDecoder(maxTableSize: 256);

        AssertDecodes(decoder, blocks[0],
            [H(":status", "302"), H("cache-control", "private"), H("date", Date1), H("location", Location)],
            [H("location", Location), H("date", Date1), H("cache-control", "private"), H(":status", "302")], 222);
        // Adding ":status: 307" (42 bytes) to 222 bytes evicts ":status: 302".
        AssertDecodes(decoder, blocks[1],
            [H(":status", "307"), H("cache-control", "private"), H("date", Date1), H("location", Location)],
            [H(":status", "307"), H("location", Location), H("date", Date1), H("cache-control", "private")], 222);
        // The new date evicts two entries; the cookie (98 bytes) evicts two more.
        AssertDecodes(decoder, blocks[2],
            [H(":status", "200"), H("cache-control", "private"), H("date", Date2), H("location", Location), H("content-encoding", "gzip"), H("set-cookie", Cookie)],
            [H("set-cookie", Cookie), H("content-encoding", "gzip"), H("date", Date2)], 215);
    }

    // ---- Dynamic table edge cases ----

    [Fact]
    public void An_entry_larger_than_the_table_empties_it()
    {
        var decoder = new HpackDecoder(maxTableSize: 64);
        Decode(decoder, "4001 6101 62"); // a: b, 34 bytes
        Assert.Equal([H("a", "b")], decoder.GetDynamicTable());

        var big = "40 01 63 20" + string.Concat(Enumerable.Repeat("78", 32)); // c: 32 x's, 65 bytes
        Assert.Equal([H("c", new string('x', 32))], Decode(decoder, big));
        Assert.Empty(decoder.GetDynamicTable());
        Assert.Equal(0, decoder.DynamicTableSize);
        Assert.Throws<HpackException>(() => Decode(decoder, "be"));
    }

    [Fact]
    public void Size_updates_at_the_start_of_a_block_evict_and_may_come_twice()
    {
        var decoder = new HpackDecoder();
        Decode(decoder, "4001 6101 62 4001 6301 64"); // a: b, then c: d
        Assert.Equal(68, decoder.DynamicTableSize);

        // Size 52 (31 + 21) evicts the oldest entry only; index 62 is then "c: d".
        Assert.Equal([H("c", "d")], Decode(decoder, "3f 15 be"));
        Assert.Equal([H("c", "d")], decoder.GetDynamicTable());
        Assert.Equal(52, decoder.DynamicTableMaxSize);

        // Size 0 empties the table, then 4096 restores the limit, both before the first field.
        Assert.Equal([H(":method", "GET")], Decode(decoder, "20 3f e1 1f 82"));
        Assert.Empty(decoder.GetDynamicTable());
        Assert.Equal(4096, decoder.DynamicTableMaxSize);
    }

    // ---- Huffman ----

    [Fact]
    public void Huffman_known_vector()
    {
        var encoded = HpackHuffman.Encode(Encoding.ASCII.GetBytes("www.example.com"));
        Assert.Equal(Hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff"), encoded);
        Assert.Equal("www.example.com", Encoding.ASCII.GetString(HpackHuffman.Decode(encoded)));
    }

    [Fact]
    public void Huffman_round_trips_every_byte_value()
    {
        var all = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        Assert.Equal(all, HpackHuffman.Decode(HpackHuffman.Encode(all)));
        foreach (var b in all)
        {
            Assert.Equal([b], HpackHuffman.Decode(HpackHuffman.Encode([b])));
        }
    }

    [Fact]
    public void Huffman_round_trips_arbitrary_bytes()
    {
        Prop.ForAll<byte[]>(bytes => HpackHuffman.Decode(HpackHuffman.Encode(bytes)).AsSpan().SequenceEqual(bytes)).Check(Config);
    }

    [Fact]
    public void Huffman_round_trips_seeded_random_strings()
    {
        var random = new Random(7541);
        for (var i = 0; i < 1000; i++)
        {
            var bytes = new byte[random.Next(0, 300)];
            random.NextBytes(bytes);
            var encoded = HpackHuffman.Encode(bytes);
            Assert.Equal(bytes, HpackHuffman.Decode(encoded));
        }
    }

    // ---- Malformed input: each is a COMPRESSION_ERROR ----

    private static HpackException AssertRejected(string hex, int maxTableSize = 4096, int maxHeaderListSize = 64 * 1024) =>
        Assert.Throws<HpackException>(() => Decode(new HpackDecoder(maxTableSize, maxHeaderListSize), hex));

    [Fact]
    public void Index_0_is_rejected() => AssertRejected("80");

    [Fact]
    public void An_index_beyond_both_tables_is_rejected()
    {
        var ex = AssertRejected("c6"); // 70, with an empty dynamic table
        Assert.Contains("index 70 is outside the static and dynamic tables", ex.Message);
        AssertRejected("be"); // 62: the first dynamic index, but the table is empty
        AssertRejected("0f 2f 01 61"); // a literal naming index 62
        Assert.Equal([H("www-authenticate", "")], Decode(new HpackDecoder(), "bd")); // 61 is the last static entry
    }

    [Theory]
    [InlineData("ff ff ff ff ff 0f")] // 127 + (15 << 28) + ...: above int.MaxValue
    [InlineData("ff 80 80 80 80 80 00")] // six continuation bytes
    [InlineData("ff 80 80")] // ends inside the integer
    public void Bad_integers_are_rejected(string hex) => AssertRejected(hex);

    [Fact]
    public void A_size_update_above_the_advertised_size_is_rejected()
    {
        Decode(new HpackDecoder(), "3f e1 1f"); // 4096 is fine
        AssertRejected("3f e2 1f"); // 4097
        AssertRejected("3f e1 01", maxTableSize: 100); // 256 > 100
    }

    [Fact]
    public void A_size_update_after_a_field_is_rejected() => AssertRejected("82 20");

    [Theory]
    [InlineData("00 03 61")] // name of 3 bytes, one present
    [InlineData("00 01 61 05 62 63")] // value of 5 bytes, two present
    [InlineData("00 01 61")] // no value at all
    [InlineData("00 01 61 83 1f")] // Huffman value of 3 bytes, one present
    public void A_truncated_string_is_rejected(string hex) => AssertRejected(hex);

    [Theory]
    [InlineData("ff")] // 8 bits of padding and nothing else
    [InlineData("1f ff")] // "a" then 11 bits of padding
    [InlineData("1f ff ff ff")] // "a" then 27 bits of padding
    public void Huffman_padding_longer_than_7_bits_is_rejected(string hex)
    {
        Assert.Throws<HpackException>(() => HpackHuffman.Decode(Hex(hex)));
        AssertRejected($"00 01 61 {0x80 | Hex(hex).Length:x2} {hex}");
    }

    [Theory]
    [InlineData("18")] // "a" (00011) then 000
    [InlineData("1e")] // "a" then 110
    public void Huffman_padding_that_is_not_all_ones_is_rejected(string hex)
    {
        Assert.Throws<HpackException>(() => HpackHuffman.Decode(Hex(hex)));
        AssertRejected($"00 01 61 81 {hex}");
    }

    [Theory]
    [InlineData("ff ff ff fc")] // EOS (30 ones), then 2 bits
    [InlineData("1f ff ff ff ff")] // "a", then EOS, then 2 padding bits
    public void Huffman_EOS_inside_a_string_is_rejected(string hex)
    {
        Assert.Throws<HpackException>(() => HpackHuffman.Decode(Hex(hex)));
        AssertRejected($"00 01 61 {0x80 | Hex(hex).Length:x2} {hex}");
    }

    [Fact]
    public void A_header_list_over_the_limit_is_reported_and_still_decoded_whole_so_the_table_stays_in_step()
    {
        // ":method: GET" counts 7 + 3 + 32 = 42 bytes.
        var decoder = new HpackDecoder(maxHeaderListSize: 84);
        var headers = new List<KeyValuePair<string, string>>();
        Assert.True(decoder.Decode(Hex("82 82"), headers));
        Assert.Equal(2, headers.Count);

        // Over the limit: false, the fields past it dropped, but the literal after them still enters the table.
        headers.Clear();
        Assert.False(decoder.Decode(Hex("82 82 82 4001 6101 62"), headers)); // then "a: b", incrementally indexed
        Assert.Equal(2, headers.Count);
        Assert.Equal([new KeyValuePair<string, string>("a", "b")], decoder.GetDynamicTable());

        // So the next block, which refers to that entry, decodes as the peer meant it.
        Assert.Equal([new KeyValuePair<string, string>("a", "b")], Decode(decoder, "be"));
    }

    // ---- Encoder ----

    [Fact]
    public void Encoded_request_headers_decode_back_in_order()
    {
        KeyValuePair<string, string>[] fields =
        [
            H(":method", "POST"), H(":scheme", "http"), H(":path", "/proto.API/Publish"), H("content-type", "application/grpc"),
            H("te", "trailers"), H("grpc-timeout", "5S"), H("x-custom", "Abc"), H("x-latin1", "naïve ©"), H("x-long", new string('v', 300)),
            H("accept-encoding", "gzip, deflate"), H("x-empty", ""),
        ];
        var output = new ArrayBufferWriter<byte>();
        foreach (var (name, value) in fields)
        {
            HpackEncoder.Encode(output, name, value);
        }

        var decoder = new HpackDecoder();
        var headers = new List<KeyValuePair<string, string>>();
        decoder.Decode(output.WrittenSpan, headers);
        Assert.Equal(fields, headers);
        Assert.Empty(decoder.GetDynamicTable()); // the encoder never indexes
    }

    [Theory]
    [InlineData(":method", "POST", "83")]
    [InlineData(":scheme", "http", "86")]
    [InlineData("accept-encoding", "gzip, deflate", "90")]
    [InlineData(":path", "/a", "04 02 2f61")] // static name 4, raw value
    [InlineData("content-type", "x", "0f 10 01 78")] // static name 31 needs a continuation byte after the 4-bit prefix
    [InlineData("te", "trailers", "00 02 7465 08 7472 6169 6c65 7273")] // new name
    public void Encoder_uses_the_static_table_and_raw_strings(string name, string value, string expectedHex)
    {
        var output = new ArrayBufferWriter<byte>();
        HpackEncoder.Encode(output, name, value);
        Assert.Equal(Hex(expectedHex), output.WrittenSpan.ToArray());
    }

    [Theory]
    [InlineData("Content-Type", "x")]
    [InlineData("x-CUSTOM", "x")]
    [InlineData("", "x")]
    [InlineData("x-name", "流")]
    [InlineData("x-流", "x")]
    public void Encoder_rejects_upper_case_names_and_non_latin1_chars(string name, string value)
    {
        Assert.Throws<ArgumentException>(() => HpackEncoder.Encode(new ArrayBufferWriter<byte>(), name, value));
    }
}
