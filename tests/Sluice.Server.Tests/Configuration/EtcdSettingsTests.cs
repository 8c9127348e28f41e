using Sluice.Server.Configuration;

namespace Sluice.Server.Tests.Configuration;

public class EtcdSettingsTests
{
    [Fact]
    public void Defaults_keep_the_embedded_store_with_5s_timeouts_and_a_3s_lease()
    {
        var clustering = Load.Options("").Clustering;
        Assert.False(clustering.Etcd.Enabled);
        Assert.Empty(clustering.Etcd.Endpoints);
        Assert.Null(clustering.Etcd.TlsCa);
        Assert.Null(clustering.Etcd.TlsCert);
        Assert.Null(clustering.Etcd.TlsKey);
        Assert.Equal(TimeSpan.FromSeconds(5), clustering.Etcd.DialTimeout);
        Assert.Equal(TimeSpan.FromSeconds(5), clustering.Etcd.RequestTimeout);
        Assert.Equal(TimeSpan.FromSeconds(3), clustering.BrokerLeaseTtl);
    }

    [Fact]
    public void Every_etcd_key_is_read_from_yaml()
    {
        var clustering = Load.Options("""
            clustering:
              etcd:
                endpoints: [https://10.0.0.1:2379, "https://10.0.0.2:2379"]
                tls.ca: /etc/etcd/ca.pem
                tls.cert: /etc/etcd/client.pem
                tls.key: /etc/etcd/client-key.pem
                dial.timeout: 2s
                request.timeout: 1500ms
              broker.lease.ttl: 10s
            """).Clustering;
        Assert.True(clustering.Etcd.Enabled);
        Assert.Equal(["https://10.0.0.1:2379", "https://10.0.0.2:2379"], clustering.Etcd.Endpoints);
        Assert.Equal(("/etc/etcd/ca.pem", "/etc/etcd/client.pem", "/etc/etcd/client-key.pem"), (clustering.Etcd.TlsCa, clustering.Etcd.TlsCert, clustering.Etcd.TlsKey));
        Assert.Equal(TimeSpan.FromSeconds(2), clustering.Etcd.DialTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(1500), clustering.Etcd.RequestTimeout);
        Assert.Equal(TimeSpan.FromSeconds(10), clustering.BrokerLeaseTtl);
    }

    [Fact]
    public void Endpoints_split_on_commas_and_a_bare_host_port_means_http()
    {
        Assert.Equal(["http://a:2379", "http://b:2379"], Load.Options("clustering.etcd.endpoints: a:2379,http://b:2379").Clustering.Etcd.Endpoints);
        var env = new Dictionary<string, string?> { ["SLUICE_CLUSTERING_ETCD_ENDPOINTS"] = "http://e:2379" };
        Assert.Equal(["http://e:2379"], Load.With(env: env).Options.Clustering.Etcd.Endpoints);
    }

    [Fact]
    public void Peer_addresses_map_broker_ids_to_the_address_dialled()
    {
        var peers = Load.Options("clustering.peer.addresses: b2=127.0.0.1:9300, b3=[::1]:9301").Clustering.PeerAddresses;
        Assert.Equal("127.0.0.1:9300", peers["b2"]);
        Assert.Equal("[::1]:9301", peers["b3"]);
        Assert.Empty(Load.Options("").Clustering.PeerAddresses);
    }

    [Fact]
    public void The_etcd_endpoints_flag_overrides_the_file_and_repeats()
    {
        var flags = new ConfigFlags { EtcdEndpoints = ["http://a:2379,http://b:2379", "http://c:2379"] };
        var options = Load.With("clustering.etcd.endpoints: http://file:2379", flags: flags).Options;
        Assert.Equal(["http://a:2379", "http://b:2379", "http://c:2379"], options.Clustering.Etcd.Endpoints);
    }

    [Theory]
    [InlineData("clustering.etcd.endpoints: ftp://a:2379", "clustering.etcd.endpoints")]
    [InlineData("clustering.etcd.endpoints: http://a:2379,https://b:2379", "clustering.etcd.endpoints")]
    [InlineData("clustering.etcd.dial.timeout: 0s", "clustering.etcd.dial.timeout")]
    [InlineData("clustering.etcd.request.timeout: -1s", "clustering.etcd.request.timeout")]
    [InlineData("clustering.broker.lease.ttl: 1500ms", "clustering.broker.lease.ttl")]
    [InlineData("clustering.broker.lease.ttl: 0s", "clustering.broker.lease.ttl")]
    [InlineData("clustering.etcd.tls.cert: /c.pem", "clustering.etcd.tls.key")]
    [InlineData("clustering.etcd.tls.key: /k.pem", "clustering.etcd.tls.cert")]
    [InlineData("clustering.peer.addresses: b2", "clustering.peer.addresses")]
    [InlineData("clustering.peer.addresses: b2=127.0.0.1", "clustering.peer.addresses")]
    [InlineData("clustering.peer.addresses: b2=127.0.0.1:0", "clustering.peer.addresses")]
    [InlineData("clustering.peer.addresses: =127.0.0.1:9", "clustering.peer.addresses")]
    [InlineData("clustering.peer.addresses: b2=h:1,b2=h:2", "clustering.peer.addresses")]
    public void Bad_etcd_settings_are_refused_with_their_key(string yaml, string key) =>
        Assert.Equal(key, Load.Failure(yaml).Key);
}
