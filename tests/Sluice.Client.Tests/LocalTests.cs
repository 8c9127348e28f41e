using Sluice.Client.Internal;
using Sluice.Protocol.Api;
using Sluice.Protocol.Grpc;
using Sluice.Protocol.Hashing;
using static Sluice.Client.Tests.TestHelpers;

namespace Sluice.Client.Tests;

/// <summary>Everything that needs no server: hashing, ids, envelopes, validation, error mapping.</summary>
public sealed class LocalTests
{
    [Theory]
    [InlineData("", 0x00000000u)]
    [InlineData("a", 0xE8B7BE43u)]
    [InlineData("123456789", 0xCBF43926u)]
    [InlineData("The quick brown fox jumps over the lazy dog", 0x414FA339u)]
    public void Crc32_matches_the_IEEE_check_values(string input, uint expected)
    {
        Assert.Equal(expected, Crc32Ieee.Compute(Bytes(input)));
        Assert.Equal(expected, Crc32Ieee.Compute(input));
    }

    [Fact]
    public void Key_partitioner_is_crc32_of_the_key_modulo_partitions_and_empty_key_is_partition_of_empty_string()
    {
        var metadata = MetadataWith("s", partitions: 7);
        Assert.Equal((int)(0xCBF43926u % 7), Partitioners.ByKey.GetPartition("s", Bytes("123456789"), default, metadata));
        Assert.Equal(0, Partitioners.ByKey.GetPartition("s", default, Bytes("v"), metadata));
    }

    [Fact]
    public void Round_robin_partitioner_cycles_per_stream()
    {
        var partitioner = new RoundRobinPartitioner();
        var metadata = MetadataWith("s", partitions: 3);
        var chosen = Enumerable.Range(0, 6).Select(_ => partitioner.GetPartition("s", default, default, metadata)).ToArray();
        Assert.Equal([0, 1, 2, 0, 1, 2], chosen);
    }

    [Fact]
    public void Cursor_partition_is_crc32_of_id_stream_partition()
    {
        var expected = (int)(Crc32Ieee.Compute(Bytes("abc,foo,2")) % 5);
        Assert.Equal(expected, SluiceClient.CursorsPartition("abc", "foo", 2, 5));
    }

    [Fact]
    public void A_broker_address_follows_host_and_port_through_copies()
    {
        var broker = new BrokerInfo { Id = "b", Host = "10.0.0.1", Port = 9292 };
        Assert.Equal("10.0.0.1:9292", broker.Address);
        Assert.Same(broker.Address, broker.Address);

        Assert.Equal("10.0.0.1:9393", (broker with { Port = 9393 }).Address);
        Assert.Equal("[::1]:9292", (broker with { Host = "::1" }).Address);
        Assert.Equal("10.0.0.1:9292", broker.Address);
    }

    [Fact]
    public void Nuids_are_22_base62_characters_and_unique()
    {
        var ids = Enumerable.Range(0, 10_000).Select(_ => Nuid.Next()).ToArray();
        Assert.All(ids, id => Assert.Matches("^[0-9A-Za-z]{22}$", id));
        Assert.Equal(ids.Length, ids.Distinct(StringComparer.Ordinal).Count());
    }

    [Fact]
    public void Publish_envelope_has_liftbridge_header_and_round_trips_every_field()
    {
        var options = MessageOptions.Default.WithHeader("h", Bytes("hv")) with
        {
            Key = Bytes("key"),
            AckInbox = "acks",
            CorrelationId = "123",
            AckPolicy = AckPolicy.All,
        };
        var envelope = SluiceEnvelope.CreatePublishEnvelope(Bytes("hello"), options);
        Assert.Equal(new byte[] { 0xB9, 0x0E, 0x43, 0xB4, 0x00, 0x08, 0x00, 0x00 }, envelope[..8]);

        // The payload is exactly the protobuf Message a Go client would marshal.
        var proto = Message.Parser.ParseFrom(envelope.AsSpan(8));
        Assert.Equal("hello", proto.Value.ToStringUtf8());
        Assert.Equal(-1, proto.Offset); // expected offset -1: no concurrency check

        var parsed = SluiceEnvelope.ParseMessage(envelope);
        Assert.Equal("hello", Text(parsed.Value));
        Assert.Equal("key", Text(parsed.Key));
        Assert.Equal("acks", parsed.AckInbox);
        Assert.Equal("123", parsed.CorrelationId);
        Assert.Equal(AckPolicy.All, parsed.AckPolicy);
        Assert.Equal("hv", Text(parsed.Headers["h"]));
    }

    [Fact]
    public void Ack_envelope_from_the_server_parses_and_bad_envelopes_are_typed_errors()
    {
        var ack = new Ack { Stream = "foo", Offset = 42, MsgSubject = "foo", CorrelationId = "c", ReceptionTimestamp = 1_000_000_000 };
        var data = Sluice.Protocol.Envelopes.Envelope.EncodeAck(ack);
        var parsed = SluiceEnvelope.ParseAck(data);
        Assert.Equal(("foo", 42L, "c"), (parsed.Stream, parsed.Offset, parsed.CorrelationId));
        Assert.Equal(DateTimeOffset.UnixEpoch.AddSeconds(1), parsed.ReceptionTimestamp);

        Assert.Throws<InvalidEnvelopeException>(() => SluiceEnvelope.ParseAck(new byte[] { 1, 2, 3 }));
        Assert.Throws<InvalidEnvelopeException>(() => SluiceEnvelope.ParseAck(SluiceEnvelope.CreatePublishEnvelope(Bytes("x")))); // type mismatch
    }

    [Fact]
    public void No_addresses_is_a_clear_error()
    {
        var ex = Assert.Throws<ArgumentException>(() => new SluiceClient([]));
        Assert.Contains("no addresses provided", ex.Message);
        Assert.Throws<ArgumentException>(() => new SluiceClient([" "]));
    }

    [Fact]
    public void Invalid_client_options_are_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new SluiceClient(["127.0.0.1:1"], SluiceClientOptions.Default with { MaxConnectionsPerBroker = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SluiceClient(["127.0.0.1:1"], SluiceClientOptions.Default with { AckWaitTime = TimeSpan.Zero }));
    }

    [Fact]
    public void Defaults_match_go_liftbridge()
    {
        var options = SluiceClientOptions.Default;
        Assert.Equal(TimeSpan.FromSeconds(30), options.ResubscribeWaitTime);
        Assert.Equal(TimeSpan.FromSeconds(5), options.AckWaitTime);
        Assert.Equal(2, options.MaxConnectionsPerBroker);
        Assert.Equal(TimeSpan.FromSeconds(30), options.KeepAliveTime);
        Assert.Equal(-1, MessageOptions.Default.ExpectedOffset);
        Assert.Equal(AckPolicy.Leader, MessageOptions.Default.AckPolicy);
        Assert.Equal(StartPosition.NewOnly, SubscribeOptions.Default.StartPosition);
        Assert.True((StreamOptions.Default with { MaxReplication = true }).ReplicationFactor == StreamOptions.MaxReplicationFactor);
    }

    [Theory]
    [InlineData(GrpcStatusCode.AlreadyExists, 0, typeof(StreamExistsException))]
    [InlineData(GrpcStatusCode.NotFound, 1, typeof(NoSuchStreamException))]
    [InlineData(GrpcStatusCode.NotFound, 2, typeof(NoSuchPartitionException))]
    [InlineData(GrpcStatusCode.NotFound, 3, typeof(NoSuchPartitionException))]
    [InlineData(GrpcStatusCode.NotFound, 4, typeof(StreamDeletedException))]
    [InlineData(GrpcStatusCode.FailedPrecondition, 4, typeof(PartitionPausedException))]
    [InlineData(GrpcStatusCode.ResourceExhausted, 3, typeof(ReadonlyPartitionException))]
    [InlineData(GrpcStatusCode.ResourceExhausted, 4, typeof(ReadonlyPartitionException))]
    [InlineData(GrpcStatusCode.FailedPrecondition, 5, typeof(ReadonlyPartitionException))]
    [InlineData(GrpcStatusCode.DeadlineExceeded, 6, typeof(AckTimeoutException))]
    [InlineData(GrpcStatusCode.Unavailable, 0, typeof(BrokerUnavailableException))]
    [InlineData(GrpcStatusCode.InvalidArgument, 0, typeof(SluiceException))]
    internal void Status_codes_map_to_go_liftbridge_errors(GrpcStatusCode code, int kind, Type expected)
    {
        var mapped = SluiceErrors.FromStatus(new GrpcException(code, "detail"), (RpcKind)(kind switch
        {
            0 => (int)RpcKind.CreateStream,
            1 => (int)RpcKind.DeleteStream,
            2 => (int)RpcKind.PauseOrReadonly,
            3 => (int)RpcKind.SubscribeOpen,
            4 => (int)RpcKind.SubscribeStream,
            5 => (int)RpcKind.PublishSend,
            _ => (int)RpcKind.PublishToSubject,
        }));
        Assert.IsType(expected, mapped);
        Assert.Equal(code, mapped.StatusCode);
    }

    [Fact]
    public void Async_publish_errors_map_like_go_liftbridge()
    {
        Assert.IsType<NoSuchPartitionException>(SluiceErrors.FromAsyncError(new PublishAsyncError { Code = PublishAsyncError.Types.Code.NotFound, Message = "no such stream: x" }));
        Assert.IsType<ReadonlyPartitionException>(SluiceErrors.FromAsyncError(new PublishAsyncError { Code = PublishAsyncError.Types.Code.Readonly }));
        Assert.IsType<IncorrectOffsetException>(SluiceErrors.FromAsyncError(new PublishAsyncError { Code = PublishAsyncError.Types.Code.IncorrectOffset, Message = "incorrect expected offset" }));
        var unknown = Assert.IsType<PublishFailedException>(SluiceErrors.FromAsyncError(new PublishAsyncError { Code = PublishAsyncError.Types.Code.Unknown, Message = "internal error" }));
        Assert.Equal("internal error", unknown.Message);
    }

    [Fact]
    public void Subscribe_options_chain_immutably()
    {
        var baseOptions = SubscribeOptions.Default;
        var options = baseOptions.StartAtOffset(5).StopAtLatest() with { Partition = 2 };
        Assert.Equal((StartPosition.Offset, 5L, StopPosition.Latest, 2), (options.StartPosition, options.StartOffset, options.StopPosition, options.Partition));
        Assert.Equal(StartPosition.NewOnly, baseOptions.StartPosition);
        var delta = SubscribeOptions.Default.StartAtTimeDelta(TimeSpan.FromMinutes(1));
        Assert.Equal(StartPosition.Timestamp, delta.StartPosition);
        Assert.InRange(delta.StartTime!.Value, DateTimeOffset.UtcNow.AddMinutes(-2), DateTimeOffset.UtcNow);
    }

    private static SluiceMetadata MetadataWith(string stream, int partitions)
    {
        var response = new FetchMetadataResponse();
        var streamMetadata = new StreamMetadata { Name = stream, Subject = stream };
        for (var i = 0; i < partitions; i++)
        {
            streamMetadata.Partitions[i] = new PartitionMetadata { Id = i };
        }

        response.StreamMetadata.Add(streamMetadata);
        return SluiceMetadata.FromProto(response, DateTimeOffset.UtcNow);
    }
}
