#include "kafka/mock_cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace streamrec {

namespace {
Status FromKafka(rd_kafka_resp_err_t err, const std::string& what) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::OK();
  return Status::IOError(what + ": " + rd_kafka_err2str(err));
}
}  // namespace

StatusOr<std::unique_ptr<MockKafkaCluster>> MockKafkaCluster::Start(int brokers) {
  if (brokers < 1) return Status::InvalidArgument("brokers must be at least 1, got " + std::to_string(brokers));
  std::unique_ptr<MockKafkaCluster> mock(new MockKafkaCluster());
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", error, sizeof(error));
  mock->handle_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof(error));
  if (mock->handle_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    return Status::IOError(std::string("mock cluster handle: ") + error);
  }
  mock->cluster_ = rd_kafka_mock_cluster_new(mock->handle_, brokers);
  if (mock->cluster_ == nullptr) return Status::IOError("cannot start the mock Kafka cluster");
  mock->bootstrap_ = rd_kafka_mock_cluster_bootstraps(mock->cluster_);
  mock->brokers_ = brokers;
  return mock;
}

namespace {

// Copies bytes both ways between two sockets until either side closes or `stopping` is set.
void Relay(int a, int b, const std::atomic<bool>& stopping) {
  char buffer[65536];
  pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
  while (!stopping.load()) {
    int ready = ::poll(fds, 2, 100);
    if (ready < 0 && errno != EINTR) break;
    bool closed = false;
    for (int i = 0; i < 2 && !closed; ++i) {
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      ssize_t n = ::read(fds[i].fd, buffer, sizeof(buffer));
      if (n <= 0) {
        closed = true;
        break;
      }
      int to = fds[1 - i].fd;
      for (ssize_t off = 0; off < n;) {
        ssize_t w = ::write(to, buffer + off, static_cast<size_t>(n - off));
        if (w <= 0) {
          closed = true;
          break;
        }
        off += w;
      }
    }
    if (closed) break;
  }
  ::close(a);
  ::close(b);
}

}  // namespace

StatusOr<std::string> MockKafkaCluster::ListenOn(int port) {
  // Broker 1 is the first entry of the bootstrap list: "127.0.0.1:NNNN,...".
  std::string first = bootstrap_.substr(0, bootstrap_.find(','));
  size_t colon = first.rfind(':');
  std::string host = first.substr(0, colon);
  int target_port = std::stoi(first.substr(colon + 1));

  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return Status::IOError(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 64) != 0) {
    std::string error = std::strerror(errno);
    ::close(fd);
    return Status::IOError("cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + error);
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string address = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  listeners_.emplace_back([this, fd, host, target_port] { AcceptLoop(fd, host, target_port); });
  return address;
}

void MockKafkaCluster::AcceptLoop(int listen_fd, std::string target_host, int target_port) {
  pollfd pfd = {listen_fd, POLLIN, 0};
  while (!stopping_.load()) {
    if (::poll(&pfd, 1, 100) <= 0) continue;
    int client = ::accept(listen_fd, nullptr, nullptr);
    if (client < 0) continue;
    int upstream = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(target_port));
    ::inet_pton(AF_INET, target_host.c_str(), &addr.sin_addr);
    if (upstream < 0 || ::connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(client);
      if (upstream >= 0) ::close(upstream);
      continue;
    }
    std::lock_guard<std::mutex> lock(relays_mu_);
    relays_.emplace_back([this, client, upstream] { Relay(client, upstream, stopping_); });
  }
  ::close(listen_fd);
}

MockKafkaCluster::~MockKafkaCluster() {
  stopping_.store(true);
  // Listeners add relay threads until they see the flag: join them first.
  for (auto& t : listeners_) t.join();
  for (auto& t : relays_) t.join();
  if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(cluster_);
  if (handle_ != nullptr) rd_kafka_destroy(handle_);
}

Status MockKafkaCluster::CreateTopic(const std::string& topic, int partitions, int replication) {
  return FromKafka(rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, replication),
                   "create topic '" + topic + "'");
}

Status MockKafkaCluster::SetBrokerDown(int broker_id) {
  return FromKafka(rd_kafka_mock_broker_set_down(cluster_, broker_id),
                   "broker " + std::to_string(broker_id) + " down");
}

Status MockKafkaCluster::SetBrokerUp(int broker_id) {
  return FromKafka(rd_kafka_mock_broker_set_up(cluster_, broker_id),
                   "broker " + std::to_string(broker_id) + " up");
}

void MockKafkaCluster::PushRequestErrors(int16_t api_key,
                                         const std::vector<rd_kafka_resp_err_t>& errors) {
  rd_kafka_mock_push_request_errors_array(cluster_, api_key, errors.size(), errors.data());
}

Status MockKafkaCluster::SetPartitionLeader(const std::string& topic, int partition, int broker_id) {
  return FromKafka(rd_kafka_mock_partition_set_leader(cluster_, topic.c_str(), partition, broker_id),
                   "leader of " + topic + "/" + std::to_string(partition));
}

}  // namespace streamrec
